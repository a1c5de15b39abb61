"""`{placeholders}` in a stage's run, env, cwd and junit: what they expand to and how a mistake is reported.

`{python}`, `{jobs}`, `{tree}` and `{root}` expand anywhere in a string; `{patched}` and `{patched:GLOBS}`
only as a whole argv item, which becomes one item per patched path; `{tests}` (a `select_tests` stage only)
also as a whole item, which becomes one item per test target that [verify.test_map] maps a patched path to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.config import Config, Stage
from mpspatch.foundation.errors import ConfigError
from mpspatch.foundation.globs import check_glob, matches_any

_PLACEHOLDER = re.compile(r"\{(python|jobs|tree|root|tests|patched(?::[^{}]*)?)\}")
TESTS = "{tests}"


@dataclass(frozen=True)
class Placeholders:
    python: str
    jobs: int
    tree: Path
    root: Path
    patched: tuple[str, ...]
    tests: tuple[str, ...] = ()  # `{tests}`: the selected test targets

    def scalar(self, name: str) -> str:
        return {"python": self.python, "jobs": str(self.jobs), "tree": str(self.tree), "root": str(self.root)}[name]


def default_jobs() -> int:
    return os.cpu_count() or 1


def selected_tests(stage: Stage, paths: Sequence[str]) -> tuple[str, ...]:
    """The test targets the stage's map gives the patched paths: in map order, each once, and a test id
    (`file::Class`) dropped when its whole file is selected too, so pytest does not run it twice."""
    chosen: dict[str, None] = {}
    for glob, targets in stage.test_map:
        if any(matches_any(p, (glob,)) for p in paths):
            chosen.update(dict.fromkeys(targets))
    return tuple(t for t in chosen if t.split("::", 1)[0] == t or t.split("::", 1)[0] not in chosen)


def empty_patched(argv: Sequence[str], ph: Placeholders) -> str | None:
    """The `{patched...}` item of argv that expands to no path, if any.

    Such a command is not run: clang-format or lintrunner given no file would read stdin or lint something
    else, and a pass over no file proves nothing.
    """
    for item in argv:
        whole = _PLACEHOLDER.fullmatch(item)
        if item == TESTS and not ph.tests:
            return item
        if whole and whole.group(1).startswith("patched"):
            token = whole.group(1)
            if not _patched_unchecked(token, ph.patched):
                return item
    return None


def _patched_unchecked(token: str, paths: Sequence[str]) -> list[str]:
    if ":" not in token:
        return list(paths)
    globs = tuple(g.strip() for g in token.split(":", 1)[1].split(",") if g.strip())
    try:
        for glob in globs:
            check_glob(glob)
    except ValueError:
        return list(paths)  # expand_argv reports the bad glob
    return [p for p in paths if matches_any(p, globs)]


def expand_argv(stage: Stage, argv: Sequence[str], ph: Placeholders) -> tuple[str, ...]:
    """Expand `{python}`, `{jobs}`, `{tree}`, `{root}`; an item that is exactly `{patched...}` becomes the paths."""
    out: list[str] = []
    for item in argv:
        whole = _PLACEHOLDER.fullmatch(item)
        if whole and whole.group(1).startswith("patched"):
            out.extend(_patched(stage, whole.group(1), ph.patched))
            continue
        if item == TESTS:
            out.extend(expand_scalars(stage, t, ph, "test_map") for t in ph.tests)
            continue
        out.append(expand_scalars(stage, item, ph, "run"))
    return tuple(out)


def expand_env(stage: Stage, ph: Placeholders) -> tuple[tuple[str, str], ...]:
    return tuple((key, expand_scalars(stage, value, ph, f"env.{key}")) for key, value in stage.env)


def validate(config: Config, stages: Sequence[Stage]) -> None:
    """Expand every stage once with stand-in values, so a bad placeholder stops the run before it starts."""
    stand_in = Placeholders(python="python", jobs=1, tree=Path("/tree"), root=config.root, patched=("a.h",),
                            tests=("test/test_a.py",))
    for stage in stages:
        try:
            for argv in stage.run:
                expand_argv(stage, argv, stand_in)
            expand_env(stage, stand_in)
            expand_scalars(stage, stage.cwd, stand_in, "cwd")
            if stage.junit:
                expand_scalars(stage, stage.junit, stand_in, "junit")
            for _, targets in stage.test_map:
                for target in targets:
                    expand_scalars(stage, target, stand_in, "test_map")
        except ConfigError as exc:
            raise ConfigError(f"{config.path}: {exc.message}") from None


def expand_scalars(stage: Stage, text: str, ph: Placeholders, where: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1).startswith("patched") or match.group(1) == "tests":
            raise ConfigError(
                f"[stages.{stage.name}].{where}: {match.group(0)} must be a whole argv item, not part of {text!r}; "
                f"fix: write it as its own list element"
            )
        return ph.scalar(match.group(1))

    return _PLACEHOLDER.sub(one, text)


def _patched(stage: Stage, token: str, paths: Sequence[str]) -> list[str]:
    if ":" in token:
        globs = tuple(g.strip() for g in token.split(":", 1)[1].split(",") if g.strip())
        if not globs:
            raise ConfigError(f"[stages.{stage.name}].run: {{{token}}} names no glob; fix: {{patched:**/*.mm}}")
        for glob in globs:
            try:
                check_glob(glob)
            except ValueError as exc:
                raise ConfigError(
                    f"[stages.{stage.name}].run: bad glob {glob!r} in {{{token}}} ({exc}); fix the pattern"
                ) from None
    return _patched_unchecked(token, paths)
