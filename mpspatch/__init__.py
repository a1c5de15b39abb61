"""mpspatch: carry a large downstream patch against PyTorch and get it upstream."""

from __future__ import annotations

# The version lives in one place, pyproject.toml; the installed package's metadata carries it. It is read on
# first use (module __getattr__), so importing mpspatch stays as cheap as before.


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mpspatch")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'mpspatch' has no attribute {name!r}")
