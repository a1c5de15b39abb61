"""The version: one source (pyproject.toml, through the package metadata), `--version`, the evidence and the
stage cache key."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mpspatch
from mpspatch.foundation.config import Stage
from mpspatch.verify.machine import Machine, tool_versions
from mpspatch.verify.runner import cache_key

ROOT = Path(__file__).resolve().parent.parent


def test_one_source_of_truth() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert mpspatch.__version__ == importlib.metadata.version("mpspatch") == declared
    assert declared not in (ROOT / "mpspatch/__init__.py").read_text()


def test_version_option_prints_it_and_imports_nothing_heavy() -> None:
    probe = ("import sys\nfrom mpspatch import cli\ntry:\n    cli.main(['--version'])\nexcept SystemExit as e:\n"
             "    code = e.code\nheavy = sorted(m for m in ('rich', 'jinja2', 'unidiff', 'mpspatch.verify', "
             "'mpspatch.model') if m in sys.modules)\nprint('heavy', heavy, code, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60)
    assert done.stdout == f"mpspatch {mpspatch.__version__}\n"
    # rich comes with console.py's import in cli today; nothing of the core is imported.
    assert "mpspatch.verify" not in done.stderr and "mpspatch.model" not in done.stderr and " 0" in done.stderr


def test_the_version_is_in_the_evidence_tools_and_the_cache_key(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert ("mpspatch", mpspatch.__version__) in tool_versions(tmp_path)
    stage = Stage(name="s", kind="command", run=(("true",),))  # type: ignore[arg-type]
    args = dict(series=["a" * 64], base="b" * 40, tree="c" * 40, tools=(), machine=Machine("linux", "x86_64"))
    before = cache_key(stage, **args)  # type: ignore[arg-type]
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9" if name == "mpspatch" else real(name))
    assert mpspatch.__version__ == "9.9.9"
    assert cache_key(stage, **args) != before  # type: ignore[arg-type]
