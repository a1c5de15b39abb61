"""One use case per command, shared by the CLI and the demo."""
