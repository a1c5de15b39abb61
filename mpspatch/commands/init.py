"""`init`: a starter project from the files the package ships, so a `pip install` user needs nothing else.

The starter is mpspatch/starter/ (mpspatch.toml.in, the prose skeletons, the .gitignore) plus the checklist
and the harness sources, which the wheel carries under mpspatch/starter/ too (pyproject's force-include) and a
source checkout has at the repository's top level. With --from-patch, the checkout, base and allowed paths come
from the patch. Nothing is ever overwritten: the first file that exists stops init with exit 2 before any write.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from string import Template

from mpspatch.foundation.errors import InputError

_PACKAGE = Path(__file__).resolve().parent.parent
STARTER = _PACKAGE / "starter"
# Files the wheel force-includes under starter/ and a source checkout keeps at its top level.
_SHARED = ("audit/requirements.toml", "harness/stress_parallel_inference.py", "harness/test_stream_pool.py",
           "harness/tsan.supp", "harness/tsan_mps_parallel.cpp")
_OWN = ("docs/prose/summary.md", "docs/prose/motivation.md", "docs/prose/alternatives.md",
        "docs/prose/limitations.md")
DEFAULT_CHECKOUT = "../pytorch"
DEFAULT_BASE = "main"
DEFAULT_TITLE = "Describe the change in one line"
DEFAULT_PATCH = "patches/downstream.patch"  # where `mpspatch import` writes the patch of a one-patch series
# Without a patch to read them from: the folders an MPS backend change usually touches.
DEFAULT_ALLOWED = ("aten/src/ATen/mps/", "aten/src/ATen/native/mps/", "aten/src/ATen/detail/MPSHooksInterface.h",
                   "aten/src/ATen/native/native_functions.yaml", "torch/csrc/mps/", "torch/mps/", "test/test_mps.py")
_BASE_COMMIT = re.compile(r"^base-commit: ([0-9a-f]{7,64})\s*$", re.MULTILINE)
_SUBJECT = re.compile(r"^Subject: (?:\[[^\]]*\] *)?(.+)$", re.MULTILINE)
_VERSION_TAG = re.compile(r"(?<![\w.])v\d+\.\d+(?:\.\d+)?(?:-?rc\d+)?(?![\w])")


@dataclass(frozen=True)
class InitResult:
    directory: Path
    written: tuple[str, ...]  # relative to `directory`, in the order written
    checkout: str  # as mpspatch.toml says it
    base: str
    base_from: str  # where the base came from: "patch base-commit", "patch name", "default"
    patches: tuple[str, ...]
    allowed_paths: tuple[str, ...]


def starter_source(relative: str) -> Path:
    """The shipped file behind a starter path: the wheel's copy, else the source checkout's."""
    packaged = STARTER / relative
    if packaged.is_file():
        return packaged
    checkout = _PACKAGE.parent / relative
    if checkout.is_file():
        return checkout
    raise InputError(f"init: this mpspatch installation lacks its starter file {relative}; reinstall mpspatch")


def allowed_paths_for(paths: list[str]) -> tuple[str, ...]:
    """The prefixes that allow exactly the patch's folders: a folder with two or more changed files is allowed
    whole (`a/b/`), a lone file only by itself; a prefix inside an allowed folder is dropped."""
    parents = Counter(str(PurePosixPath(p).parent) for p in paths)
    prefixes = set()
    for path in paths:
        parent = str(PurePosixPath(path).parent)
        prefixes.add(f"{parent}/" if parent != "." and parents[parent] >= 2 else path)
    kept = sorted(p for p in prefixes if not any(o != p and o.endswith("/") and p.startswith(o) for o in prefixes))
    return tuple(kept)


def _categories(allowed: tuple[str, ...]) -> str:
    def glob(prefix: str) -> str:
        return f"{prefix}**" if prefix.endswith("/") else prefix

    tests = [glob(p) for p in allowed if p.startswith("test/")]
    source = [glob(p) for p in allowed if not p.startswith("test/")]
    lines = []
    if source:
        lines.append(f'"Source" = {json.dumps(source)}')
    if tests:
        lines.append(f'"Tests" = {json.dumps(tests)}')
    if not lines:
        lines.append('# "Core" = ["aten/src/ATen/mps/**"]     # name = globs; `mpspatch stats` lists what is left over')
    return "\n".join(lines) + "\n"


def _toml_list(items: tuple[str, ...]) -> str:
    if not items:
        return "[]"
    return "[\n" + "".join(f"  {json.dumps(i)},\n" for i in items) + "]"


def _from_patch(patch: Path) -> tuple[str, str, str, list[str]]:
    """(base, where the base came from, title, changed paths) of a patch file."""
    from mpspatch.model.diff import DiffParseError, parse_diff

    try:
        text = patch.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise InputError(f"init: --from-patch {patch} does not exist; name a patch file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise InputError(f"init: --from-patch {patch} cannot be read ({exc.strerror}); name a patch file") from None
    try:
        changes = parse_diff(text)
    except DiffParseError as exc:
        raise InputError(f"init: --from-patch {patch} is not a unified diff ({exc}); "
                         "give the output of `git diff` or `git format-patch`") from None
    paths = [str(c.path) for c in changes]
    if not paths:
        raise InputError(f"init: --from-patch {patch} changes no file; give the output of `git diff BASE`")
    found = _BASE_COMMIT.search(text)
    tag = _VERSION_TAG.search(patch.name)
    if found:
        base, base_from = found.group(1), "patch base-commit"
    elif tag:
        base, base_from = tag.group(0), "patch name"
    else:
        base, base_from = DEFAULT_BASE, "default"
    subject = _SUBJECT.search(text.split("\ndiff --git ", 1)[0])
    title = subject.group(1).strip() if subject else DEFAULT_TITLE
    return base, base_from, title, paths


def init(directory: Path, *, from_patch: Path | None = None, upstream: Path | None = None) -> InitResult:
    """Write the starter project into `directory` (created when missing); refuse before writing if any file
    it would write exists."""
    directory = directory.absolute()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"init: {directory} is a file; name a folder for the new project")
    if upstream is not None:
        if not (upstream / ".git").exists():
            raise InputError(f"init: --upstream {upstream} is not a git clone; "
                             "clone it first: git clone https://github.com/pytorch/pytorch.git")
        checkout = Path(os.path.relpath(upstream.absolute(), directory)).as_posix()
    else:
        checkout = DEFAULT_CHECKOUT

    allowed: tuple[str, ...] = DEFAULT_ALLOWED
    base, base_from, title = DEFAULT_BASE, "default", DEFAULT_TITLE
    patches: tuple[str, ...] = (DEFAULT_PATCH,)
    copy_patch: tuple[Path, str] | None = None
    if from_patch is not None:
        base, base_from, title, paths = _from_patch(from_patch)
        allowed = allowed_paths_for(paths)
        source = from_patch.absolute()
        if source.is_relative_to(directory):
            patches = (source.relative_to(directory).as_posix(),)
        else:
            patches = (f"patches/{from_patch.name}",)
            copy_patch = (source, patches[0])

    config_text = Template(starter_source("mpspatch.toml.in").read_text(encoding="utf-8")).substitute(
        checkout=json.dumps(checkout), base=json.dumps(base), patches=json.dumps(list(patches)),
        allowed_paths=_toml_list(allowed), categories=_categories(allowed), title=json.dumps(title))
    plan: list[tuple[str, Path | str]] = [("mpspatch.toml", config_text), (".gitignore", starter_source("gitignore"))]
    plan += [(rel, starter_source(rel)) for rel in (*_SHARED[:1], *_OWN, *_SHARED[1:])]
    if copy_patch is not None:
        plan.append((copy_patch[1], copy_patch[0]))

    for rel, _ in plan:
        if (directory / rel).exists() or (directory / rel).is_symlink():
            shown = rel if Path(directory) == Path.cwd() else str(directory / rel)
            raise InputError(f"init: {shown} already exists; mpspatch init never overwrites a file: "
                             "move it away, or init another folder")
    for rel, content in plan:
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content, encoding="utf-8")
    return InitResult(directory=directory, written=tuple(rel for rel, _ in plan), checkout=checkout, base=base,
                      base_from=base_from, patches=patches, allowed_paths=allowed)
