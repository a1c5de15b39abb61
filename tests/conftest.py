from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


# Golden Markdown files (tests/golden/) are rewritten only on request: `pytest --accept-golden` or
# MPSPATCH_ACCEPT_GOLDEN=1. Without it, a differing golden file is a failure with a diff.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--accept-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current output instead of comparing with it")
