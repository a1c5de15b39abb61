"""mpspatch: carry a large downstream patch against PyTorch and get it upstream."""
