"""The offline sample the demo runs on: a builder and its data."""
