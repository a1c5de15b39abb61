"""The verify keys of the config that need more than a type check: [verify] python (an interpreter or a
venv/conda folder), [verify.test_map] (path globs to test targets) and a stage's `sparse` paths."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mpspatch.foundation.errors import ConfigError
from mpspatch.foundation.globs import check_globs
from mpspatch.foundation.toml_table import Table, toml_key

TEST_MAP_EXAMPLE = '[verify.test_map] "aten/src/ATen/mps/**" = ["test/test_mps.py"]'


def read_verify_python(file: Path, root: Path, data: Mapping[str, Any]) -> Path | None:
    """[verify] python: an interpreter, or a venv/conda folder holding one; checked now, so a typo is exit 2."""
    t = Table(file, "verify", data, ("python", "test_map"))
    example = 'python = "~/venvs/pytorch/bin/python" (or the venv folder)'
    value = t.optional("python", str, example)
    if value is None:
        return None
    given = Path(value).expanduser()
    given = given if given.is_absolute() else root / given
    candidates = [given] if not given.is_dir() else [given / "bin" / "python", given / "bin" / "python3",
                                                      given / "Scripts" / "python.exe", given / "python.exe"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return Path(os.path.abspath(candidate))  # not resolved: a venv's python is a symlink
    what = "names a folder without bin/python" if given.is_dir() else "is not an executable file"
    raise t.fail("python", f"{what} ({value})", example)


def sparse_paths(t: Table, full_tree: bool) -> tuple[str, ...]:
    """[[stages]].sparse: tree paths (a trailing `/**` is accepted and dropped), never globs or outside the tree."""
    example = 'sparse = ["tools/linter"]'
    paths = t.strings("sparse", example, ())
    if paths and full_tree:
        raise t.fail("sparse", "only applies to a stage with full_tree = false (a full tree already has it)",
                     "full_tree = false")
    cleaned = []
    for path in paths:
        bare = path[:-3] if path.endswith("/**") else path
        bare = bare.rstrip("/")
        parts = bare.split("/")
        if not bare or bare.startswith("/") or ".." in parts or "." in parts or any(c in bare for c in "*?[]\\"):
            raise t.fail("sparse", f"{path!r} is not a folder or file path inside the tree", example)
        cleaned.append(bare)
    return tuple(dict.fromkeys(cleaned))


def read_test_map(file: Path, data: Mapping[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """[verify.test_map]: path glob -> test targets (a string or a list of them), checked now."""
    raw = data.get("test_map", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: [verify].test_map must be a table of path globs; fix: {TEST_MAP_EXAMPLE}")
    entries = []
    for glob, targets in raw.items():
        listed = [targets] if isinstance(targets, str) else targets
        if not isinstance(listed, list) or not listed or not all(isinstance(t, str) and t for t in listed):
            raise ConfigError(f"{file}: [verify.test_map].{toml_key(glob)} must be a test target or a non-empty "
                              f"list of them; fix: {TEST_MAP_EXAMPLE}")
        check_globs(file, "[verify.test_map]", [glob])
        entries.append((glob, tuple(listed)))
    return tuple(entries)
