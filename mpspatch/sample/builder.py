"""Writes the offline demo sample: an upstream git history plus a downstream patch against it.

The data lives in `mpspatch/sample/data/` (see its README.md). This module turns it into:

    DEST/upstream/                      git repository, tags v1.0, v1.1 and v1.2, branch main
    DEST/project/mpspatch.toml          configuration: base v1.0, target v1.2, four stages
    DEST/project/audit/requirements.toml
                                        the sample's contribution checklist
    DEST/project/docs/prose/            the hand-written parts of the PR and issue
    DEST/project/patches/stream-pool.patch
                                        `git diff --full-index v1.0 <downstream commit>`

Identities, dates and the time zone are pinned, so every run yields the same commit SHAs and the
same patch bytes. The downstream commit is made in a scratch clone that is deleted afterwards, so
no branch or tag of the upstream repository reaches it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from mpspatch.foundation import proc
from mpspatch.foundation.errors import MpspatchError

PATCH_NAME = "stream-pool.patch"
BASE_TAG = "v1.0"
RELEASES = ("v1.0", "v1.1", "v1.2")

# The declared race: dropping the lock in MPSStream::commit lets threads that share a stream
# update its command counter concurrently. The replacement stays clang-format and lint clean, so
# only the TSan stage can catch it.
RACE_FILE = "aten/src/ATen/mps/Stream.cpp"
RACE_OLD = "  std::lock_guard<std::mutex> guard(mutex_);\n  work();\n  ++commands_;\n"
RACE_NEW = (
    "  // Demo race: no lock here, so threads that share this stream race on commands_.\n"
    "  work();\n"
    "  ++commands_;\n"
)

# The TSan stage's compiler as the sample's config names it. `write_sample(cxx=...)` puts another
# compiler with ThreadSanitizer in its place, e.g. clang++ on a machine without g++.
CONFIG_NAME = "mpspatch.toml"
DEFAULT_CXX = "g++"
_TSAN_COMPILE = '"g++", "-std=c++17", "-fsanitize=thread"'
COMPILER_NAME = re.compile(r"[A-Za-z0-9_.+/-]+")

_DOWNSTREAM_SUBJECT = "[MPS] Replace the default stream with a thread-safe stream pool"
_DOWNSTREAM_BODY = """\
Threads that run ops at the same time used to share one stream whose command
counter was not synchronised. MPSStreamPool keeps a fixed set of streams, binds
each thread to one of them round-robin on first use, and serialises command
buffers on each stream with a mutex. Adds a ThreadSanitizer harness, pytest
tests driving mpsrun, and a lintrunner config.
"""

# Pinned so that SHAs never depend on who runs the demo, when, or where.
_EPOCH = 1736157600  # 2025-01-06 10:00:00 UTC
_DAY = 86400
_TZ_OFFSET = "+0000"


@dataclass(frozen=True)
class _Identity:
    name: str
    email: str


_UPSTREAM_DEV = _Identity("Ada Upstream", "ada@upstream.example")
_DOWNSTREAM_DEV = _Identity("Dan Downstream", "dan@downstream.example")


class SampleError(MpspatchError):
    """The sample cannot be written: the destination is taken, or git failed."""


@dataclass(frozen=True)
class Sample:
    """Where a written sample lives. Every path is absolute."""

    root: Path
    upstream: Path
    project: Path
    patches: Path
    patch: Path
    config: Path
    break_race: bool
    cxx: str  # the compiler the tsan stage runs


@dataclass(frozen=True)
class _Commit:
    release: str
    message: str
    files: tuple[str, ...]
    tag: str | None


def write_sample(dest: Path, *, break_race: bool = False, cxx: str = DEFAULT_CXX) -> Sample:
    """Writes the sample into `dest`, which may exist but must not hold `upstream` or `project`.

    `cxx` is the compiler the config's tsan stage calls (a name on PATH or a path).

    The sample is assembled in a hidden staging folder inside `dest` and moved into place at the
    end, so a failure leaves no half-written sample behind.
    """
    root = dest.resolve()
    for name in ("upstream", "project"):
        if (root / name).exists():
            raise SampleError(f"{root / name} already exists: choose an empty folder for the sample")
    if not COMPILER_NAME.fullmatch(cxx):
        raise SampleError(f"{cxx!r} is not a usable compiler name: use a program name or a path without spaces")
    root.mkdir(parents=True, exist_ok=True)
    data = files(__package__ or "mpspatch").joinpath("data")
    staging = Path(tempfile.mkdtemp(prefix=".sample-", dir=root))
    try:
        _build_upstream(data.joinpath("upstream"), staging / "upstream")
        patch_text = _build_downstream_patch(
            data.joinpath("downstream"), staging / "upstream", staging / "scratch", break_race
        )
        project = staging / "project"
        for rel, item in _walk(data.joinpath("project")):
            content = item.read_bytes()
            if rel == CONFIG_NAME and cxx != DEFAULT_CXX:
                content = _with_compiler(content, cxx)
            _write(project / rel, content)
        _write(project / "patches" / PATCH_NAME, patch_text)
        os.replace(staging / "upstream", root / "upstream")
        os.replace(project, root / "project")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Sample(
        root=root,
        upstream=root / "upstream",
        project=root / "project",
        patches=root / "project" / "patches",
        patch=root / "project" / "patches" / PATCH_NAME,
        config=root / "project" / CONFIG_NAME,
        break_race=break_race,
        cxx=cxx,
    )


def _build_upstream(data: Traversable, repo: Path) -> None:
    commits = _read_history(data)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for index, commit in enumerate(commits):
        release = data.joinpath(commit.release)
        for rel in commit.files:
            _write(repo / rel, _resource(release, rel).read_bytes())
        when = _EPOCH + index * _DAY
        _git(repo, "add", "--", *commit.files, when=when)
        _git(repo, "commit", "-q", "--no-verify", "-m", commit.message, when=when)
        if commit.tag is not None:
            _git(repo, "tag", "-a", commit.tag, "-m", f"miniaten {commit.tag[1:]}", when=when)


def _build_downstream_patch(data: Traversable, upstream: Path, scratch: Path, break_race: bool) -> bytes:
    _git(scratch.parent, "clone", "-q", "--no-checkout", str(upstream), str(scratch))
    _git(scratch, "checkout", "-q", "--detach", BASE_TAG)
    overlay = dict(_walk(data))
    for rel, item in overlay.items():
        content = item.read_bytes()
        if break_race and rel == RACE_FILE:
            content = _inject_race(content)
        _write(scratch / rel, content)
    when = _EPOCH + _DAY + _DAY // 2  # between v1.0 and v1.1: the work was done against v1.0
    _git(scratch, "add", "-A", when=when)
    message = _DOWNSTREAM_SUBJECT + "\n\n" + _DOWNSTREAM_BODY
    _git(scratch, "commit", "-q", "--no-verify", "-m", message, when=when, who=_DOWNSTREAM_DEV)
    # --full-index keeps whole blob ids on the index lines, which `git apply --3way` needs.
    return _git(
        scratch, "diff", "--full-index", "--no-color", "--no-ext-diff", "--no-renames", BASE_TAG, "HEAD"
    )


def _inject_race(content: bytes) -> bytes:
    text = content.decode()
    if text.count(RACE_OLD) != 1:
        raise SampleError(f"sample/data/downstream/{RACE_FILE} no longer holds the lock to remove")
    return text.replace(RACE_OLD, RACE_NEW).encode()


def _with_compiler(content: bytes, cxx: str) -> bytes:
    text = content.decode()
    if text.count(_TSAN_COMPILE) != 1:
        raise SampleError(f"sample/data/project/{CONFIG_NAME} no longer names g++ once in its tsan stage")
    return text.replace(_TSAN_COMPILE, _TSAN_COMPILE.replace('"g++"', f'"{cxx}"')).encode()


def _read_history(data: Traversable) -> list[_Commit]:
    """Reads history.toml and checks it commits every file of every release exactly once."""
    raw = tomllib.loads(data.joinpath("history.toml").read_text(encoding="utf-8"))
    commits: list[_Commit] = []
    for entry in raw["commits"]:
        body = str(entry.get("body", "")).strip()
        subject = str(entry["subject"])
        commits.append(
            _Commit(
                release=str(entry["release"]),
                message=subject + ("\n\n" + body if body else ""),
                files=tuple(str(f) for f in entry["files"]),
                tag=str(entry["tag"]) if "tag" in entry else None,
            )
        )
    for release in RELEASES:
        listed = [f for c in commits if c.release == release for f in c.files]
        present = sorted(rel for rel, _ in _walk(data.joinpath(release)))
        if sorted(listed) != present:
            raise SampleError(
                f"sample/data/upstream/history.toml: the commits of {release} list {sorted(listed)}"
                f" but the folder holds {present}"
            )
    tags = [c.tag for c in commits if c.tag is not None]
    if tags != list(RELEASES):
        raise SampleError(f"sample/data/upstream/history.toml: tags are {tags}, expected {list(RELEASES)}")
    return commits


def _walk(folder: Traversable) -> Iterator[tuple[str, Traversable]]:
    """Yields (relative posix path, resource) for every file under `folder`, sorted."""
    pending = [(PurePosixPath(), folder)]
    found: list[tuple[str, Traversable]] = []
    while pending:
        prefix, current = pending.pop()
        for item in current.iterdir():
            if item.name == "__pycache__":
                continue  # left behind if a tool ever imported one of the sample's scripts
            if item.is_dir():
                pending.append((prefix / item.name, item))
            else:
                found.append((str(prefix / item.name), item))
    yield from sorted(found, key=lambda pair: pair[0])


def _resource(folder: Traversable, rel: str) -> Traversable:
    return folder.joinpath(*PurePosixPath(rel).parts)


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _git_env(who: _Identity, when: int) -> dict[str, str]:
    # Drop inherited GIT_* variables (GIT_DIR, GIT_INDEX_FILE from a hook, ...) and the user's
    # and system's config, so the repository and its SHAs depend on nothing outside this module.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    stamp = f"{when} {_TZ_OFFSET}"
    env.update(
        GIT_AUTHOR_NAME=who.name,
        GIT_AUTHOR_EMAIL=who.email,
        GIT_AUTHOR_DATE=stamp,
        GIT_COMMITTER_NAME=who.name,
        GIT_COMMITTER_EMAIL=who.email,
        GIT_COMMITTER_DATE=stamp,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        TZ="UTC",
        LC_ALL="C",
    )
    return env


def _git(cwd: Path, *args: str, when: int = _EPOCH, who: _Identity = _UPSTREAM_DEV) -> bytes:
    """Runs one git command and returns its stdout as bytes (patches are kept byte for byte)."""
    argv: Sequence[str] = ["git", *args]
    try:
        # inherit_env=False: _git_env already holds the environment minus GIT_* and the user's config.
        result = proc.run_bytes(argv, cwd=cwd, env=_git_env(who, when), timeout=60, check=False, inherit_env=False)
    except MpspatchError as error:
        raise SampleError(f"{' '.join(argv)} could not run in {cwd}: {error.message}") from error
    if result.returncode != 0:
        output = result.stderr or result.stdout.decode("utf-8", errors="replace")
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise SampleError(f"{' '.join(argv)} failed in {cwd} (exit {result.returncode}): {tail}")
    return result.stdout
