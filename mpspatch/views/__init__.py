"""Terminal views and JSON shapes, one per command (the only place rich is used with cli.py)."""
