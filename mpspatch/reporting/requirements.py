"""The contribution checklist (`audit/requirements.toml`) as frozen data.

Each row says what satisfies it: a verify stage passing on current evidence, a check computed from the
patch and the series, or an action only a person can take. Check names are validated against the check
registry (checks.py), so a typo in the TOML is an exit-2 error with a suggestion instead of a requirement
that silently never passes.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from mpspatch.foundation.errors import ConfigError
from mpspatch.foundation.toml_table import Table
from mpspatch.reporting.checks import CHECKS

REQUIREMENTS_VERSION = 1


class SatisfiedBy(StrEnum):
    """What satisfies a requirement: the key of its `satisfied_by` table."""

    STAGE = "stage"  # a verify stage passing on current evidence
    CHECK = "check"  # a computed check passing
    HUMAN = "human"  # an action only a person can take; never counted as done


# Short names, as the checklist's readers use them.
STAGE, CHECK, HUMAN = SatisfiedBy.STAGE, SatisfiedBy.CHECK, SatisfiedBy.HUMAN

_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_ROW_KEYS = ("id", "area", "title", "satisfied_by", "blocking", "note")


@dataclass(frozen=True)
class Requirement:
    id: str
    area: str
    title: str
    kind: SatisfiedBy
    target: str  # the stage name, the check name, or what the person must do
    blocking: bool
    note: str = ""  # context for the reader of the audit, shown beside the evidence


@dataclass(frozen=True)
class Requirements:
    path: Path
    areas: tuple[str, ...]  # display order
    items: tuple[Requirement, ...]

    def in_area(self, area: str) -> tuple[Requirement, ...]:
        return tuple(r for r in self.items if r.area == area)

    def stage_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.target for r in self.items if r.kind == STAGE))


def load_requirements(path: Path) -> Requirements | None:
    """The checklist at `path`, or None when the file does not exist (status reports that as a gap)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that spot") from None
    return parse_requirements(path, raw)


def parse_requirements(path: Path, raw: Mapping[str, Any]) -> Requirements:
    top = Table(path, "top level", raw, ("version", "areas", "requirement"))
    version = top.get("version", int, f"version = {REQUIREMENTS_VERSION}")
    if version != REQUIREMENTS_VERSION:
        raise top.fail("version", f"is {version}, this mpspatch reads {REQUIREMENTS_VERSION}",
                       f"version = {REQUIREMENTS_VERSION}")
    areas = top.strings("areas", 'areas = ["CLA", "License"]')
    if not areas or len(set(areas)) != len(areas):
        raise top.fail("areas", "must list each area once", 'areas = ["CLA", "License"]')
    rows = top.get("requirement", list, "[[requirement]] tables")
    items: list[Requirement] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: requirement[{index}] must be a table; fix: write it as [[requirement]]")
        item = _read_row(path, index, row, areas)
        if any(r.id == item.id for r in items):
            raise ConfigError(f"{path}: requirement id {item.id!r} is used twice; fix: give each row its own id")
        items.append(item)
    if not items:
        raise ConfigError(f"{path}: no [[requirement]] rows; fix: add the checklist rows")
    unused = [a for a in areas if not any(r.area == a for r in items)]
    if unused:
        raise top.fail("areas", f"names {unused[0]!r}, which no requirement uses",
                       "remove it or add a row with that area")
    return Requirements(path=path, areas=areas, items=tuple(items))


def _read_row(path: Path, index: int, row: Mapping[str, Any], areas: tuple[str, ...]) -> Requirement:
    t = Table(path, f"requirement[{index}]", row, _ROW_KEYS)
    rid = t.get("id", str, 'id = "cla-signed"')
    if not _ID.fullmatch(rid):
        raise t.fail("id", f"{rid!r} is not lower-case words joined by '-'", 'id = "cla-signed"')
    t.name = f"requirement.{rid}"
    area = t.get("area", str, f'area = "{areas[0]}"')
    if area not in areas:
        hint = difflib.get_close_matches(area, areas, n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else "add it to the top-level `areas` list"
        raise ConfigError(f"{path}: [requirement.{rid}].area {area!r} is not in `areas`; {fix}")
    keys = tuple(k.value for k in SatisfiedBy)  # plain strings, so a typo's suggestion prints as text
    by = Table(path, f"requirement.{rid}.satisfied_by", t.table("satisfied_by"), keys)
    given = [kind for kind in SatisfiedBy if kind.value in by.data]
    if len(given) != 1:
        raise t.fail("satisfied_by", "must name exactly one of stage, check or human",
                     'satisfied_by = { stage = "tsan" }')
    kind = given[0]
    target = by.get(kind, str, f'{kind} = "..."').strip()
    if not target:
        raise by.fail(kind, "is empty", f'{kind} = "..."')
    if kind == CHECK and target not in CHECKS:
        hint = difflib.get_close_matches(target, tuple(CHECKS), n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"known checks: {', '.join(CHECKS)}"
        raise ConfigError(f"{path}: [requirement.{rid}].satisfied_by names unknown check {target!r}; {fix}")
    return Requirement(
        id=rid,
        area=area,
        title=t.get("title", str, 'title = "CLA signed by the submitter"').strip(),
        kind=kind,
        target=target,
        blocking=t.get("blocking", bool, "blocking = true"),
        note=(t.optional("note", str, 'note = "..."') or "").strip(),
    )
