"""Read and validate mpspatch.toml into frozen dataclasses.

Every mistake becomes one ConfigError line naming the file, the key and the fix, because a config typo is
the most common way a run goes wrong and a traceback would hide which key it was.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from mpspatch.foundation.errors import ConfigError
from mpspatch.foundation.globs import check_globs
from mpspatch.foundation.toml_table import Table, toml_key
from mpspatch.foundation.verify_config import TEST_MAP_EXAMPLE, read_test_map, read_verify_python, sparse_paths

CONFIG_NAME = "mpspatch.toml"
DEFAULT_LOCK = "patches/series.lock"
DEFAULT_MAX_LINES = 2000  # PyTorch's PR sanity check limit on added plus deleted lines
DEFAULT_SECTIONS = ("summary", "motivation", "alternatives", "limitations")
_SECTION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PATCHED_GLOBS = re.compile(r"\{patched:([^{}]*)\}")  # globs inside a stage's argv, checked at load


class StageKind(StrEnum):
    """The `kind` of a [[stages]] table: it picks the result parser. What each kind does lives in
    verify/stages/kinds.py; this is only the vocabulary, so the config can be checked without the runner."""

    BUILD = "build"
    LINT = "lint"
    TSAN = "tsan"
    TESTS = "tests"
    COMMAND = "command"


class ConflictStyle(StrEnum):
    """[rebase] conflict_style: git's merge.conflictStyle in the shadow repository (rebase and drift)."""

    MERGE = "merge"
    DIFF3 = "diff3"
    ZDIFF3 = "zdiff3"


@dataclass(frozen=True)
class MergeDriver:
    """One [rebase.merge_drivers] line: a gitattributes pattern and the command git runs to merge it."""

    pattern: str
    command: str  # as git's merge.<name>.driver: %O %A %B %L %P are replaced by git


@dataclass(frozen=True)
class Rebase:
    """How the shadow repository merges, for rebase and drift alike."""

    conflict_style: ConflictStyle = ConflictStyle.MERGE
    merge_drivers: tuple[MergeDriver, ...] = ()  # in the config's order; the first pattern that matches wins


@dataclass(frozen=True)
class Upstream:
    url: str
    checkout: Path
    base: str
    target: str


@dataclass(frozen=True)
class Series:
    patches: tuple[Path, ...]
    allowed_paths: tuple[str, ...]
    lock: Path


@dataclass(frozen=True)
class Category:
    name: str
    globs: tuple[str, ...]


@dataclass(frozen=True)
class Requires:
    os: str | None = None
    arch: str | None = None
    mps: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    kind: StageKind
    run: tuple[tuple[str, ...], ...]
    cwd: str = "."
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 3600
    requires: Requires = field(default_factory=Requires)
    junit: str | None = None
    min_tests: int = 1
    needs_full_tree: bool = True
    # With needs_full_tree False: what the stage reads beside the patched files (its tools, its config), as
    # folders or files of the tree; each comes with everything under it (cone-mode sparse checkout).
    sparse: tuple[str, ...] = ()
    describe: str | None = None  # what the stage checks, in words a reviewer reads in the test plan
    reproduce: tuple[str, ...] = ()  # the commands a reviewer would type to check the same, in order
    # `select_tests = true`: `{tests}` expands to the targets [verify.test_map] maps the patched paths to;
    # the map is copied here, so it is part of the stage's definition (and of its cache key).
    select_tests: bool = False
    test_map: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (path glob, test targets), in config order


@dataclass(frozen=True)
class Render:
    """What only a person can say, plus the numbers the documents need from config."""

    title: str
    issue: int | None
    prose_dir: Path | None
    out_dir: Path
    requirements: Path
    labels: tuple[str, ...]
    maintainer_labels: tuple[str, ...] = ()  # only a maintainer applies these (ciflow/mps): asked for, never applied
    cc: tuple[str, ...] = ()  # GitHub handles the PR and issue cc, with the leading @
    reviewers: tuple[str, ...] = ()  # GitHub handles asked to review the PR, without the @
    sections: tuple[str, ...] = DEFAULT_SECTIONS  # prose sections, in document order: <prose>/<name>.md
    optional_sections: tuple[str, ...] = ()  # listed in sections, but their absence is not a gap
    templates: Path | None = None  # a project folder whose *.md.j2 files override the shipped ones by name

    @property
    def required_sections(self) -> tuple[str, ...]:
        return tuple(s for s in self.sections if s not in self.optional_sections)


@dataclass(frozen=True)
class SplitGroup:
    title: str
    globs: tuple[str, ...]
    tests: tuple[str, ...] = ()  # test files that travel with the group's code into its parts


@dataclass(frozen=True)
class Split:
    max_lines: int
    groups: tuple[SplitGroup, ...]


class SubmitMethod(StrEnum):
    """How `submit` opens the PRs: from a fork (any contributor), or with ghstack (needs write access)."""

    FORK = "fork"
    GHSTACK = "ghstack"


DEFAULT_SUBMIT_REPO = "pytorch/pytorch"
DEFAULT_BRANCH_PREFIX = "mpspatch"


@dataclass(frozen=True)
class Submit:
    """Where `mpspatch submit` sends the series: the upstream repository, its base branch and the user's fork."""

    repo: str = DEFAULT_SUBMIT_REPO  # OWNER/NAME on GitHub
    base: str = "main"
    fork: str | None = None  # a git URL or path the branches are pushed to
    owner: str | None = None  # the fork's GitHub owner; from a GitHub fork URL when not set
    branch_prefix: str = DEFAULT_BRANCH_PREFIX
    method: SubmitMethod = SubmitMethod.FORK


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path
    upstream: Upstream
    series: Series
    categories: tuple[Category, ...]
    stages: tuple[Stage, ...]
    render: Render
    split: Split
    evidence_dir: Path
    state_dir: Path
    submit: Submit = field(default_factory=Submit)
    python: Path | None = None  # [verify] python: the interpreter `{python}` means; None: the one running mpspatch
    rebase: Rebase = field(default_factory=Rebase)


def find_config(start: Path) -> Path:
    """The nearest mpspatch.toml at or above `start`."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{start}: no {CONFIG_NAME} here or in any parent folder; pass --config PATH or create one")


def load_config(path: Path) -> Config:
    path = path.absolute()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; pass --config with an existing file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file; pass --config with the {CONFIG_NAME} file "
                          "itself") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc}); make it readable or pass "
                          "--config with another file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that spot") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    root = path.parent
    top = Table(path, "top level", raw, ("upstream", "series", "categories", "stages", "render", "split", "paths",
                                             "submit", "verify", "rebase"))
    upstream = _read_upstream(path, root, top.table("upstream"))
    series = _read_series(path, root, top.table("series"))
    categories = _read_categories(path, top.table("categories"))
    stages = _with_test_map(path, _read_stages(path, raw.get("stages", [])),
                            read_test_map(path, top.table("verify")))
    render = _read_render(path, root, top.table("render"))
    split = _read_split(path, top.table("split"))
    paths = Table(path, "paths", top.table("paths"), ("evidence", "state"))
    submit = _read_submit(path, root, top.table("submit"))
    return Config(
        path=path,
        root=root,
        upstream=upstream,
        series=series,
        categories=categories,
        stages=stages,
        render=render,
        split=split,
        evidence_dir=root / paths.get("evidence", str, 'evidence = "audit/runs"', "audit/runs"),
        state_dir=root / paths.get("state", str, 'state = ".mpspatch"', ".mpspatch"),
        submit=submit,
        python=read_verify_python(path, root, top.table("verify")),
        rebase=_read_rebase(path, top.table("rebase")),
    )


def _read_rebase(file: Path, data: Mapping[str, Any]) -> Rebase:
    t = Table(file, "rebase", data, ("conflict_style", "merge_drivers"))
    styles = ", ".join(repr(s.value) for s in ConflictStyle)
    example = f'conflict_style = "zdiff3" (one of {styles})'
    style = t.get("conflict_style", str, example, ConflictStyle.MERGE.value)
    if style not in {s.value for s in ConflictStyle}:
        raise t.fail("conflict_style", f"is {style!r}, not one of {styles}", example)
    drivers: list[MergeDriver] = []
    example = '[rebase.merge_drivers] "*.mm" = "my-merge-tool %O %A %B %L %P"'
    for pattern, command in t.table("merge_drivers").items():
        where = f"merge_drivers.{toml_key(pattern)}"
        if not isinstance(command, str) or not command.strip():
            raise t.fail(where, "must be a command (a non-empty string)", example)
        if not pattern or pattern.startswith("!") or any(c.isspace() for c in pattern):
            raise t.fail(where, "must be a gitattributes pattern without spaces or a leading '!'", example)
        if "\n" in command or "\0" in command:
            raise t.fail(where, "must be one line", example)
        drivers.append(MergeDriver(pattern=pattern, command=command))
    return Rebase(conflict_style=ConflictStyle(style), merge_drivers=tuple(drivers))


def _read_upstream(file: Path, root: Path, data: Mapping[str, Any]) -> Upstream:
    t = Table(file, "upstream", data, ("url", "checkout", "base", "target"))
    return Upstream(
        url=t.get("url", str, 'url = "https://github.com/pytorch/pytorch.git"', "https://github.com/pytorch/pytorch.git"),
        checkout=(root / t.get("checkout", str, 'checkout = "../pytorch"')).resolve(),
        base=t.get("base", str, 'base = "v2.9.1"'),
        target=t.get("target", str, 'target = "viable/strict"', "viable/strict"),
    )


def _read_series(file: Path, root: Path, data: Mapping[str, Any]) -> Series:
    t = Table(file, "series", data, ("patches", "allowed_paths", "lock"))
    patches = t.strings("patches", 'patches = ["patches/my.patch"]')
    if not patches:
        raise t.fail("patches", "is empty", 'patches = ["patches/my.patch"]')
    return Series(
        patches=tuple((root / p).resolve() for p in patches),
        allowed_paths=t.strings("allowed_paths", 'allowed_paths = ["aten/src/ATen/mps/"]', ()),
        lock=(root / t.get("lock", str, f'lock = "{DEFAULT_LOCK}"', DEFAULT_LOCK)).resolve(),
    )


def _read_categories(file: Path, data: Mapping[str, Any]) -> tuple[Category, ...]:
    categories = []
    for name, globs in data.items():
        example = f'"{name}" = ["aten/src/ATen/mps/**"]'
        if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
            raise ConfigError(f"{file}: [categories].{name} must be a list of glob strings; fix: {example}")
        check_globs(file, f"[categories.{toml_key(name)}]", globs)
        categories.append(Category(name=name, globs=tuple(globs)))
    return tuple(categories)


_STAGE_KEYS = ("name", "kind", "run", "cwd", "env", "timeout", "requires", "junit", "min_tests", "full_tree",
               "describe", "reproduce", "select_tests", "sparse")


def _read_stages(file: Path, data: Any) -> tuple[Stage, ...]:
    if not isinstance(data, list):
        raise ConfigError(f"{file}: stages must be an array of tables; fix: write each as [[stages]]")
    stages: list[Stage] = []
    for index, item in enumerate(data):
        label = f"stages[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{file}: {label} must be a table; fix: write it as [[stages]]")
        t = Table(file, label, item, _STAGE_KEYS)
        name = t.get("name", str, 'name = "tsan"')
        t.name = f"stages.{name}"
        if any(s.name == name for s in stages):
            raise ConfigError(f"{file}: [[stages]] name {name!r} is used twice; fix: give each stage its own name")
        kind = t.get("kind", str, 'kind = "tests"')
        kinds = [k.value for k in StageKind]
        if kind not in kinds:
            hint = difflib.get_close_matches(kind, kinds, n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else f"use one of {', '.join(kinds)}"
            raise ConfigError(f"{file}: [stages.{name}].kind {kind!r} is unknown; {fix}")
        run = t.get("run", list, 'run = [["make", "test"]]')
        if not run or not all(isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd) for cmd in run):
            raise t.fail("run", "must be a non-empty list of argv lists", 'run = [["make", "test"]]')
        for token in (m.group(1) for cmd in run for arg in cmd for m in _PATCHED_GLOBS.finditer(arg)):
            check_globs(file, f"[stages.{toml_key(name)}].run", [g.strip() for g in token.split(",") if g.strip()],
                         f" in {{patched:{token}}}")
        env = t.table("env")
        if not all(isinstance(v, str) for v in env.values()):
            raise t.fail("env", "values must be strings", 'env = { TSAN_OPTIONS = "halt_on_error=0" }')
        req = Table(file, f"stages.{name}.requires", t.table("requires"), ("os", "arch", "mps"))
        timeout = t.get("timeout", float, "timeout = 1800", 3600.0)
        if not math.isfinite(timeout) or timeout <= 0:
            # nan compares false with everything, so `timeout <= 0` alone let it through and disabled the timeout.
            raise t.fail("timeout", f"must be a positive number of seconds, not {timeout!r}", "timeout = 1800")
        min_tests = t.get("min_tests", int, "min_tests = 1", 1)
        full_tree = t.get("full_tree", bool, "full_tree = false", True)
        stages.append(
            Stage(
                name=name,
                kind=StageKind(kind),
                run=tuple(tuple(cmd) for cmd in run),
                cwd=t.get("cwd", str, 'cwd = "."', "."),
                env=tuple(sorted(env.items())),
                timeout=timeout,
                requires=Requires(
                    os=req.optional("os", str, 'os = "darwin"'),
                    arch=req.optional("arch", str, 'arch = "arm64"'),
                    mps=req.get("mps", bool, "mps = true", False),
                ),
                junit=t.optional("junit", str, 'junit = "test-results.xml"'),
                min_tests=min_tests,
                needs_full_tree=full_tree,
                sparse=sparse_paths(t, full_tree),
                describe=t.optional("describe", str, 'describe = "Build PyTorch from source with MPS"'),
                reproduce=t.strings("reproduce", 'reproduce = ["python -m pytest test/test_mps.py"]', ()),
                select_tests=t.get("select_tests", bool, "select_tests = true", False),
            )
        )
    return tuple(stages)


_TESTS_ITEM = re.compile(r"\{tests\}")


def _with_test_map(file: Path, stages: tuple[Stage, ...],
                   test_map: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[Stage, ...]:
    """Give each `select_tests` stage the map; `{tests}` anywhere else, or a map missing, is a config error."""
    out = []
    for stage in stages:
        uses = any(_TESTS_ITEM.search(a) for argv in stage.run for a in argv)
        if stage.select_tests and not test_map:
            raise ConfigError(f"{file}: [stages.{toml_key(stage.name)}].select_tests needs a [verify.test_map] "
                              f"to select from; fix: add {TEST_MAP_EXAMPLE}")
        if stage.select_tests and not uses:
            raise ConfigError(f"{file}: [stages.{toml_key(stage.name)}].select_tests is set but no run item is "
                              "{tests}; fix: pass the selection as its own item, e.g. [\"pytest\", \"{tests}\"]")
        if uses and not stage.select_tests:
            raise ConfigError(f"{file}: [stages.{toml_key(stage.name)}].run uses {{tests}} without "
                              "select_tests = true; fix: set it, or list the tests yourself")
        out.append(replace(stage, test_map=test_map) if stage.select_tests else stage)
    return tuple(out)


def _read_render(file: Path, root: Path, data: Mapping[str, Any]) -> Render:
    t = Table(file, "render", data, ("title", "issue", "prose", "out_dir", "requirements", "labels",
                                      "maintainer_labels", "cc", "reviewers", "sections", "optional_sections",
                                      "templates"))
    prose = t.optional("prose", str, 'prose = "docs/prose"')
    templates = t.optional("templates", str, 'templates = "templates"')
    sections = t.strings("sections", 'sections = ["summary", "motivation", "design"]', DEFAULT_SECTIONS)
    example = 'sections = ["summary", "motivation", "design"]'
    for name in sections:
        if not _SECTION_NAME.fullmatch(name):
            raise t.fail("sections", f"has {name!r}, which is not a file name (lower case, digits, - and _)", example)
    if len(set(sections)) != len(sections):
        raise t.fail("sections", "names a section twice", example)
    optional = t.strings("optional_sections", 'optional_sections = ["performance"]', ())
    for name in optional:
        if name not in sections:
            raise t.fail("optional_sections", f"has {name!r}, which [render].sections does not list",
                         f"add {name!r} to sections, or remove it here")
    return Render(
        title=t.get("title", str, 'title = "Add a stream pool for thread-safe parallel inference"',
                    "Add a stream pool for thread-safe parallel inference"),
        issue=t.optional("issue", int, "issue = 123456"),
        prose_dir=(root / prose) if prose else None,
        out_dir=root / t.get("out_dir", str, 'out_dir = "audit"', "audit"),
        requirements=root / t.get("requirements", str, 'requirements = "audit/requirements.toml"',
                                  "audit/requirements.toml"),
        labels=t.strings("labels", 'labels = ["module: mps", "release notes: mps"]', ()),
        maintainer_labels=t.strings("maintainer_labels", 'maintainer_labels = ["ciflow/mps"]', ()),
        cc=tuple("@" + h.lstrip("@") for h in t.strings("cc", 'cc = ["@maintainer-handle"]', ())),
        reviewers=tuple(h.lstrip("@") for h in t.strings("reviewers", 'reviewers = ["maintainer-handle"]', ())),
        sections=sections,
        optional_sections=optional,
        templates=(root / templates) if templates else None,
    )


_GITHUB_REPO = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+")
_BRANCH_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_GITHUB_FORK = re.compile(r"(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)([A-Za-z0-9-]+)/")


def fork_owner(fork: str) -> str | None:
    """The GitHub owner a fork URL names (`https://github.com/OWNER/pytorch.git`), or None."""
    match = _GITHUB_FORK.match(fork)
    return match.group(1) if match else None


def _read_submit(file: Path, root: Path, data: Mapping[str, Any]) -> Submit:
    t = Table(file, "submit", data, ("repo", "base", "fork", "owner", "branch_prefix", "method"))
    repo = t.get("repo", str, 'repo = "pytorch/pytorch"', DEFAULT_SUBMIT_REPO)
    if not _GITHUB_REPO.fullmatch(repo):
        raise t.fail("repo", f"{repo!r} is not OWNER/NAME", 'repo = "pytorch/pytorch"')
    fork = t.optional("fork", str, 'fork = "https://github.com/YOU/pytorch.git"')
    if fork is not None and "://" not in fork and not fork.startswith("git@") and not Path(fork).is_absolute():
        fork = str((root / fork).resolve())  # a path relative to the config folder, like every other path
    owner = t.optional("owner", str, 'owner = "YOU"')
    prefix = t.get("branch_prefix", str, 'branch_prefix = "mps-stream-pool"', DEFAULT_BRANCH_PREFIX)
    if not _BRANCH_PREFIX.fullmatch(prefix) or ".." in prefix or prefix.endswith(".lock"):
        raise t.fail("branch_prefix", f"{prefix!r} is not a usable branch name", 'branch_prefix = "mps-stream-pool"')
    method = t.get("method", str, 'method = "fork"', SubmitMethod.FORK.value)
    methods = [m.value for m in SubmitMethod]
    if method not in methods:
        raise t.fail("method", f"{method!r} is not one of {', '.join(methods)}", 'method = "fork"')
    return Submit(repo=repo, base=t.get("base", str, 'base = "main"', "main"), fork=fork,
                  owner=owner if owner is not None else (fork_owner(fork) if fork else None),
                  branch_prefix=prefix, method=SubmitMethod(method))


def _read_split(file: Path, data: Mapping[str, Any]) -> Split:
    t = Table(file, "split", data, ("max_lines", "groups"))
    max_lines = t.get("max_lines", int, "max_lines = 2000", DEFAULT_MAX_LINES)
    if max_lines <= 0:
        raise t.fail("max_lines", "must be positive", "max_lines = 2000")
    groups = []
    for index, item in enumerate(t.get("groups", list, "[[split.groups]]", [])):
        if not isinstance(item, dict):
            raise ConfigError(f"{file}: split.groups[{index}] must be a table; fix: write it as [[split.groups]]")
        g = Table(file, f"split.groups[{index}]", item, ("title", "paths", "tests"))
        globs = g.strings("paths", 'paths = ["aten/src/ATen/mps/MPSAllocator*"]')
        check_globs(file, f"[split.groups[{index}]].paths", globs)
        tests = g.strings("tests", 'tests = ["test/test_mps.py"]') if "tests" in item else ()
        check_globs(file, f"[split.groups[{index}]].tests", tests)
        groups.append(SplitGroup(title=g.get("title", str, 'title = "Allocator changes"'), globs=globs,
                                 tests=tests))
    return Split(max_lines=max_lines, groups=tuple(groups))


