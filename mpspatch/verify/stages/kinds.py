"""The stage kinds as a registry: one object per kind with everything the runner does differently for it.

The runner never branches on a kind's name; it asks the kind. The vocabulary itself (`StageKind`) lives in
the config layer so mpspatch.toml can be validated without importing the parsers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.config import StageKind
from mpspatch.verify.stages import Parsed, ParseInput, build, lint, lintrunner, tests, tsan

Parser = Callable[[ParseInput], Parsed]
# Whether the next command of a stage still runs after one exited with this code, given the stage's env.
KeepsGoing = Callable[[int, Sequence[tuple[str, str]]], bool]
# The commands one configured command runs as (argv, its cwd); most kinds run it as it is.
Split = Callable[[Sequence[str], Path], tuple[tuple[str, ...], ...]]
# Why a command of this kind must not run at all (argv, its cwd, the tree root), or None when it may.
Precheck = Callable[[Sequence[str], Path, Path], str | None]


@dataclass(frozen=True)
class Kind:
    name: StageKind
    title: str
    parse: Parser
    keeps_going: KeepsGoing
    lint: bool = False  # its findings are lint messages
    scrub_line: Callable[[str], str] | None = None  # rewrites each line of the stored log (drops bulky copies)
    installs_torch: bool = False  # its run replaces the torch later stages use (and the MPS probe imports)
    precheck: Precheck | None = None
    split: Split | None = None  # runs one configured command as several (lintrunner init, one per linter)


KINDS: Mapping[StageKind, Kind] = {
    kind.name: kind
    for kind in (
        Kind(StageKind.BUILD, "Build", build.parse, build.keeps_going, installs_torch=True),
        Kind(StageKind.LINT, "Lint", lint.parse, lint.keeps_going, lint=True, scrub_line=lint.scrub_line,
             precheck=lint.missing_style, split=lintrunner.per_linter),
        Kind(StageKind.TSAN, "ThreadSanitizer", tsan.parse, tsan.keeps_going),
        Kind(StageKind.TESTS, "Tests", tests.parse, tests.keeps_going),
        Kind(StageKind.COMMAND, "Command", build.parse, build.keeps_going),
    )
}


def kind_of(name: str) -> Kind:
    """The registered kind for `name`; config validation guarantees every configured stage has one."""
    return KINDS[StageKind(name)]
