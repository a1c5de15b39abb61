"""mpspatch: carry a large downstream patch against PyTorch and get it upstream."""

__version__ = "0.1.0"
