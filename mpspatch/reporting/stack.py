"""The split stack as readiness sees it: how many lines each part has, and whether it fits the series."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.model.series import Patch

# Where `mpspatch split` leaves its stack, relative to the config folder.
STACK_FILE = "patches/stack/stack.json"


@dataclass(frozen=True)
class StackPart:
    index: int  # 1-based
    lines: int
    oversized_hunk: bool


def read_stack(path: Path, patches: Sequence[Patch], changed: int) -> tuple[tuple[StackPart, ...] | None, str]:
    """The parts of the split stack, or (None, why) when it is absent, unreadable or made for other content.

    A stack that records the series hashes is matched on them; otherwise its parts must add up to the
    series' changed lines, which catches a stack left over from an older patch.
    """
    if not path.exists():
        return None, ""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        parts = tuple(
            StackPart(index=i, lines=int(p["lines"]), oversized_hunk=bool(p.get("oversized_hunk", False)))
            for i, p in enumerate(body["parts"], start=1)
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{STACK_FILE} is not readable ({exc.__class__.__name__}); run `mpspatch split` again"
    if not parts:
        return None, f"{STACK_FILE} has no parts"
    recorded = body.get("series")
    hashes = body.get("series_sha256")  # what `mpspatch split` records
    if isinstance(hashes, list):
        if hashes != [p.sha256 for p in patches]:
            return None, f"{STACK_FILE} was made for other series content; run `mpspatch split` again"
    elif isinstance(recorded, list) and all(isinstance(p, dict) and "sha256" in p for p in recorded):
        if [p["sha256"] for p in recorded] != [p.sha256 for p in patches]:
            return None, f"{STACK_FILE} was made for other series content; run `mpspatch split` again"
    elif sum(p.lines for p in parts) != changed:
        return None, (f"{STACK_FILE} parts add up to {sum(p.lines for p in parts):,} lines, not {changed:,}; "
                      "run `mpspatch split` again")
    return parts, ""
