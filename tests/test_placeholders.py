"""Stage placeholders: scalars anywhere, `{patched}` as whole argv items, bad globs as config errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mpspatch.foundation.config import Stage
from mpspatch.foundation.errors import ConfigError
from mpspatch.verify.placeholders import Placeholders, default_jobs, expand_argv, expand_env

PATCHED = ("aten/src/ATen/mps/MPSStream.h", "aten/src/ATen/mps/MPSStream.mm", "aten/src/ATen/native/mps/Ops.mm",
           "test/test_mps.py", "torch/mps/__init__.py")


def stage(**kw: object) -> Stage:
    values: dict[str, object] = {"name": "s", "kind": "command", "run": (("true",),)}
    values.update(kw)
    return Stage(**values)  # type: ignore[arg-type]


def ph(tmp_path: Path) -> Placeholders:
    return Placeholders(python="/py", jobs=3, tree=tmp_path / "tree", root=tmp_path, patched=PATCHED)


def test_scalar_placeholders(tmp_path: Path) -> None:
    argv = expand_argv(stage(), ["{python}", "-j{jobs}", "--tree={tree}", "{root}/harness.cpp", "{x: 1}"], ph(tmp_path))
    assert argv == ("/py", "-j3", f"--tree={tmp_path / 'tree'}", f"{tmp_path}/harness.cpp", "{x: 1}")


def test_patched_expands_to_items(tmp_path: Path) -> None:
    assert expand_argv(stage(), ["lint", "{patched}"], ph(tmp_path)) == ("lint", *PATCHED)
    assert expand_argv(stage(), ["cf", "{patched:**/*.h,**/*.mm}", "--end"], ph(tmp_path)) == (
        "cf", "aten/src/ATen/mps/MPSStream.h", "aten/src/ATen/mps/MPSStream.mm", "aten/src/ATen/native/mps/Ops.mm",
        "--end",
    )
    # `*` stays inside one folder; `**` crosses folders.
    assert expand_argv(stage(), ["{patched:aten/src/ATen/mps/*.mm}"], ph(tmp_path)) == (
        "aten/src/ATen/mps/MPSStream.mm",
    )
    assert expand_argv(stage(), ["{patched:**/*.cu}"], ph(tmp_path)) == ()


def test_patched_inside_an_item_is_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[stages.s\].run: \{patched\} must be a whole argv item"):
        expand_argv(stage(), ["--files={patched}"], ph(tmp_path))


def test_env_values_expand_scalars(tmp_path: Path) -> None:
    s = stage(env=(("MAX_JOBS", "{jobs}"), ("CC", "ccache")))
    assert expand_env(s, ph(tmp_path)) == (("MAX_JOBS", "3"), ("CC", "ccache"))


def test_placeholder_jobs_defaults_to_cpu_count() -> None:
    assert default_jobs() == (os.cpu_count() or 1)
