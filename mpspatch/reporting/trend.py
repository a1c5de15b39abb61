"""The drift history: one small record per nightly forecast, and the trend drawn from it.

`mpspatch drift --history DIR` and `.ci/gha.py drift-history` both append to `DIR/drift-history.jsonl` (one
JSON object a line, one record a night; a rerun the same night replaces it). The Markdown job summary charts
it as a Mermaid `xychart-beta`, the HTML report as an inline SVG (chart_geometry).

Standard library only: `.ci/gha.py` imports this module from the source tree in CI jobs where mpspatch's
dependencies may not have installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

HISTORY_FILE = "drift-history.jsonl"
DEFAULT_NIGHTS = 30
_SHA = re.compile(r"[0-9a-f]{40}")
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")


class NotDriftOutput(ValueError):
    """The JSON given as a forecast is not `mpspatch drift --json` output."""


@dataclass(frozen=True)
class DriftNight:
    date: str  # YYYY-MM-DD (UTC)
    onto: str
    onto_ref: str
    conflicts: int  # conflicting files
    regions: int  # conflict regions over all files
    absorbed: int  # our hunks already upstream
    upstream_commits: int
    patch_hunks: int = 0  # the patch's size: its hunks over all patched files (0 in records older than the field)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _objects(value: object) -> list[Mapping[str, object]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def night_from_drift_json(data: Mapping[str, object], date: str) -> DriftNight:
    """Tonight's record from the `mpspatch drift --json` contract (design.md)."""
    onto = data.get("onto")
    if not isinstance(onto, str) or not _REF.fullmatch(onto):
        raise NotDriftOutput("'onto' is missing; it is not `mpspatch drift --json` output")
    conflicts = _objects(data.get("conflicts"))
    commits = data.get("upstream_commits")
    return DriftNight(
        date=date, onto=onto, onto_ref=str(data.get("onto_ref", onto)), conflicts=len(conflicts),
        regions=sum(_int(c.get("regions")) for c in conflicts),
        absorbed=sum(_int(a.get("hunks")) for a in _objects(data.get("absorbed"))),
        upstream_commits=len(commits) if isinstance(commits, list) else 0,
        patch_hunks=sum(_int(f.get("hunks")) for f in _objects(data.get("files"))),
    )


def read_history(path: Path) -> list[DriftNight]:
    """The nights recorded so far, as stored; a line that is not a record (a torn write, a hand edit) is skipped."""
    if not path.exists():
        return []
    required = {f.name for f in fields(DriftNight) if f.name != "patch_hunks"}
    known = {f.name for f in fields(DriftNight)}
    nights = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict) or not set(item) >= required:
            continue
        numbers = ("conflicts", "regions", "absorbed", "upstream_commits", "patch_hunks")
        if not all(isinstance(item.get(k, 0), int) for k in numbers) or not isinstance(item["date"], str):
            continue
        nights.append(DriftNight(**{k: v for k, v in item.items() if k in known}))
    return nights


def record_night(history: Path, night: DriftNight) -> list[DriftNight]:
    """Add `night` to the history (replacing a record of the same date) and return every night, oldest first."""
    nights = [n for n in read_history(history) if n.date != night.date] + [night]
    nights.sort(key=lambda n: n.date)
    history.parent.mkdir(parents=True, exist_ok=True)
    scratch = history.with_name(history.name + ".tmp")
    scratch.write_text("".join(json.dumps(asdict(n), sort_keys=True) + "\n" for n in nights), encoding="utf-8")
    scratch.replace(history)
    return nights


def _cell(value: object) -> str:
    # A table cell must stay on one line and must not open a new column.
    return " ".join(str(value).split()).replace("|", "\\|")


def _short(value: str) -> str:
    return value[:12] if _SHA.fullmatch(value) else value


def history_markdown(nights: Sequence[DriftNight], last: int = DEFAULT_NIGHTS) -> str:
    """A heading, a Mermaid `xychart-beta` of conflict regions per night and a table, newest night first."""
    shown = list(nights)[-last:]
    lines = [f"### Drift over the last {len(shown)} night(s)", ""]
    if not shown:
        return "\n".join([*lines, "No forecast recorded yet.", ""])
    labels = ", ".join(json.dumps(n.date[5:]) for n in shown)  # MM-DD keeps the axis readable
    top = max(1, *(n.regions for n in shown))
    lines += [
        "```mermaid",
        "xychart-beta",
        '    title "Conflict regions per night"',
        f"    x-axis [{labels}]",
        f'    y-axis "regions" 0 --> {top}',
        f"    line [{', '.join(str(n.regions) for n in shown)}]",
        "```",
        "",
        "| date | onto | conflicting files | regions | absorbed hunks | upstream commits | patch hunks |",
        "|" + " --- |" * 7,
    ]
    for n in reversed(shown):
        lines.append(f"| {_cell(n.date)} | `{_cell(n.onto_ref)}` `{_short(n.onto)}` | {n.conflicts}"
                     f" | {n.regions} | {n.absorbed} | {n.upstream_commits} | {n.patch_hunks} |")
    return "\n".join([*lines, ""])


# ------------------------------------------------------------------------------------- the SVG chart


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    night: DriftNight


@dataclass(frozen=True)
class ChartGeometry:
    """Where a template draws the conflict-regions line: plain numbers, no markup, so escaping stays Jinja's."""

    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    y_max: int
    points: tuple[ChartPoint, ...]
    y_ticks: tuple[tuple[float, int], ...]  # (y, value)

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height


def chart_geometry(nights: Sequence[DriftNight], last: int = DEFAULT_NIGHTS, *, width: int = 720,
                   height: int = 260) -> ChartGeometry:
    """Coordinates of one point per night (conflict regions), oldest at the left, in an SVG of `width` x `height`."""
    shown = list(nights)[-last:]
    left, top, right, bottom = 48, 16, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max(1, *(n.regions for n in shown)) if shown else 1
    step = plot_w / (len(shown) - 1) if len(shown) > 1 else 0.0
    points = tuple(
        ChartPoint(x=left + (i * step if len(shown) > 1 else plot_w / 2),
                   y=top + plot_h - plot_h * n.regions / y_max, night=n)
        for i, n in enumerate(shown)
    )
    ticks = sorted({0, y_max // 2, y_max})
    return ChartGeometry(width=width, height=height, left=left, top=top, plot_width=plot_w, plot_height=plot_h,
                         y_max=y_max, points=points,
                         y_ticks=tuple((top + plot_h - plot_h * t / y_max, t) for t in ticks))
