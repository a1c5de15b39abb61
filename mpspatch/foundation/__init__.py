"""Errors, ids, processes, files and the config: what every layer above may use."""
