#!/usr/bin/env python3
"""Glue between mpspatch's ``--json`` output and GitHub Actions.

``outputs STATUS_JSON``
    Print ``base=...`` and ``series-sha256=...`` lines for ``$GITHUB_OUTPUT`` from ``mpspatch status --json``.
``summary --title T [--rebase FILE] [--verify FILE]``
    Print Markdown for ``$GITHUB_STEP_SUMMARY``.
``annotate VERIFY_JSON``
    Print workflow commands (``::error file=PATH,line=N,title=STAGE::message``) for the findings of
    ``mpspatch verify --json``: lint messages and TSan reports at their file and line, and one line for each
    other failed stage; at most 50 per stage plus a count of the rest.
``drift-history --drift DRIFT_JSON --history HISTORY_JSONL [--date D] [--nights N]``
    Append tonight's summary of ``mpspatch drift --json`` to the JSON-lines history (one record a night,
    a rerun the same night replaces it) and print Markdown: a table of the last N nights and a Mermaid
    ``xychart-beta`` of conflict regions over time.

Standard library only, so it runs in any job whether or not mpspatch installed cleanly; `drift-history` uses
mpspatch/reporting/trend.py from this source tree (standard library only too), the code behind
`mpspatch drift --history`. It reads the JSON
contract of design.md and nothing else. Exit codes follow mpspatch: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

# What a step output may hold. The values end up in cache keys and in shell variables, so anything
# outside git's ref alphabet is refused rather than quoted.
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PULL_URL = "https://github.com/pytorch/pytorch/pull/{}"
_STATUS_MARK = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "error": "⚠️"}


class BadInput(Exception):
    """Input the user must fix; main() turns it into exit code 2 and one line."""


@dataclass(frozen=True)
class StatusOutputs:
    base: str
    series_sha256: str


def _load_object(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: not found; run the mpspatch command with --json first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: not readable JSON ({exc}); rerun the mpspatch command with --json") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object; rerun the mpspatch command with --json")
    return {str(key): value for key, value in data.items()}


def status_outputs(path: Path) -> StatusOutputs:
    data = _load_object(path)
    base = data.get("base")
    digest = data.get("series_sha256")
    if not isinstance(base, str) or not _REF.fullmatch(base) or ".." in base:
        raise BadInput(f"{path}: 'base' is missing or not a ref name; check mpspatch.toml [upstream] base")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise BadInput(f"{path}: 'series_sha256' is missing or not 64 hex digits; check the mpspatch version")
    return StatusOutputs(base=base, series_sha256=digest)


def _cell(value: object) -> str:
    # A table cell must stay on one line and must not open a new column.
    return " ".join(str(value).split()).replace("|", "\\|")


def _short(value: object) -> str:
    text = str(value)
    return text[:12] if re.fullmatch(r"[0-9a-f]{40}", text) else text


def _list_of_objects(value: object) -> list[dict[str, object]]:
    if not isinstance(value, list):
        return []
    return [{str(k): v for k, v in item.items()} for item in value if isinstance(item, dict)]


def _counts(value: object) -> str:
    if not isinstance(value, dict) or not value:
        return ""
    return ", ".join(f"{key} {count}" for key, count in value.items())


def _regions(value: object) -> str:
    if isinstance(value, list):
        return str(len(value))
    return "" if value is None else str(value)


def rebase_markdown(path: Path) -> list[str]:
    try:
        data = _load_object(path)
    except BadInput as exc:
        return [f"**Rebase:** no result ({exc}). Read the step log."]
    status = data.get("status", "unknown")
    lines = [
        f"**Rebase:** `{_cell(status)}`, base `{_short(data.get('base', '?'))}`"
        f" → onto `{_short(data.get('onto', '?'))}`",
        "",
    ]
    conflicts = _list_of_objects(data.get("conflicts"))
    if conflicts:
        lines += ["| conflicting path | regions |", "| --- | --- |"]
        lines += [f"| `{_cell(c.get('path', '?'))}` | {_regions(c.get('regions'))} |" for c in conflicts]
        lines.append("")
    absorbed = _list_of_objects(data.get("absorbed"))
    if absorbed:
        lines += ["Already upstream (absorbed):", ""]
        for item in absorbed:
            pulls = item.get("pull_requests")
            links = ", ".join(
                f"[#{n}]({_PULL_URL.format(n)})" for n in (pulls if isinstance(pulls, list) else [])
            )
            lines.append(f"- `{_cell(item.get('path', '?'))}`" + (f" ({links})" if links else ""))
        lines.append("")
    return lines


def verify_markdown(path: Path) -> list[str]:
    try:
        data = _load_object(path)
    except BadInput as exc:
        return [f"**Verify:** no result ({exc}). Read the step log."]
    run_id, evidence = _cell(data.get("run_id", "?")), _cell(data.get("evidence", "?"))
    lines = [f"**Verify:** run `{run_id}`, evidence `{evidence}`", ""]
    stages = _list_of_objects(data.get("stages"))
    if not stages:
        return [*lines, "No stage ran.", ""]
    lines += ["| stage | kind | status | seconds | counts | reason |", "|" + " --- |" * 6]
    for stage in stages:
        status = str(stage.get("status", "?"))
        duration = stage.get("duration_s")
        seconds = f"{duration:.0f}" if isinstance(duration, int | float) else ""
        lines.append(
            f"| {_cell(stage.get('name', '?'))} | {_cell(stage.get('kind', ''))}"
            f" | {_STATUS_MARK.get(status, '')} {_cell(status)} | {seconds}"
            f" | {_cell(_counts(stage.get('counts')))} | {_cell(stage.get('reason') or '')} |"
        )
    return [*lines, ""]


def summary_markdown(title: str, rebase: Path | None, verify: Path | None) -> str:
    lines = [f"## {_cell(title)}", ""]
    if rebase is not None:
        lines += rebase_markdown(rebase)
    if verify is not None:
        lines += verify_markdown(verify)
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------------- annotations

# ------------------------------------------------------------------------------------- annotations
# One implementation, the package's (mpspatch/reporting/annotations.py, standard library only).


def annotation_lines(path: Path) -> list[str]:
    return _package("annotations").annotation_lines(_load_object(path))


# ------------------------------------------------------------------------------------- drift history
# One implementation, the package's (mpspatch/reporting/trend.py, standard library only), imported from the
# source tree this script sits in, so it works whether or not mpspatch installed.


def _package(name: str) -> ModuleType:
    """A standard-library-only module of mpspatch/reporting/, from the source tree this script sits in."""
    import importlib

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"mpspatch.reporting.{name}")


def _trend() -> ModuleType:
    return _package("trend")


def drift_night(path: Path, date: str) -> Any:
    """Tonight's record (a trend.DriftNight) from the `mpspatch drift --json` output at `path`."""
    trend = _trend()
    try:
        return trend.night_from_drift_json(_load_object(path), date)
    except trend.NotDriftOutput as exc:
        raise BadInput(f"{path}: {exc}") from None


def __getattr__(name: str) -> Any:
    # The package's trend and annotation helpers, under their old names here.
    if name in ("DriftNight", "read_history", "record_night", "history_markdown"):
        return getattr(_trend(), name)
    if name in ("escape_data", "escape_property", "workflow_command", "MAX_ANNOTATIONS"):
        return getattr(_package("annotations"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=".ci/gha.py", description="mpspatch JSON to GitHub Actions")
    commands = parser.add_subparsers(dest="command", required=True)
    outputs = commands.add_parser("outputs", help="step outputs from `mpspatch status --json`")
    outputs.add_argument("status_json", type=Path)
    summary = commands.add_parser("summary", help="Markdown job summary")
    summary.add_argument("--title", required=True)
    summary.add_argument("--rebase", type=Path)
    summary.add_argument("--verify", type=Path)
    annotate = commands.add_parser("annotate", help="workflow commands for `mpspatch verify --json` findings")
    annotate.add_argument("verify_json", type=Path)
    trend = commands.add_parser("drift-history", help="record tonight's forecast, print the trend as Markdown")
    trend.add_argument("--drift", type=Path, required=True)
    trend.add_argument("--history", type=Path, required=True)
    trend.add_argument("--date", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    trend.add_argument("--nights", type=int, default=30)
    args = parser.parse_args(argv)
    try:
        if args.command == "outputs":
            found = status_outputs(args.status_json)
            sys.stdout.write(f"base={found.base}\nseries-sha256={found.series_sha256}\n")
        elif args.command == "annotate":
            sys.stdout.write("".join(line + "\n" for line in annotation_lines(args.verify_json)))
        elif args.command == "drift-history":
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.date) or args.nights < 1:
                raise BadInput("--date takes YYYY-MM-DD and --nights a positive number")
            history = _trend()
            nights = history.record_night(args.history, drift_night(args.drift, args.date))
            sys.stdout.write(history.history_markdown(nights, args.nights))
        else:
            sys.stdout.write(summary_markdown(args.title, args.rebase, args.verify))
    except BadInput as exc:
        print(f"gha.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
