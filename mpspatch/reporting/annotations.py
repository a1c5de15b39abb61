"""GitHub Actions workflow commands for a verify run's failures: `::error file=PATH,line=N,title=STAGE::message`.

Standard library only and fed the `verify --json` object, so `verify` (when GITHUB_ACTIONS=true) and
`.ci/gha.py annotate` (on a saved JSON file) print the same lines. The runner reads workflow commands from
stderr as well as stdout, so `verify --json` keeps stdout for its one JSON object.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

MAX_ANNOTATIONS = 50  # per stage; GitHub shows at most 10 errors per step anyway, the rest is noise
_FAILED = ("failed", "error")
# Lint detail lines: "path:line: severity CODE/NAME: description" (the per-path tallies have no line); with a
# baseline, "severity (new)" or "severity (preexisting)": only new findings are annotated.
_LINT_AT = re.compile(
    r"(?P<path>[^\s:][^:]*):(?P<line>\d+): (?P<message>(?P<severity>\w+)(?: \((?P<origin>\w+)\))? .+)")
# "SUMMARY: ThreadSanitizer: data race /x/MPSStream.mm:120:5 in foo" -> the file and line of the report.
_TSAN_AT = re.compile(r"SUMMARY: ThreadSanitizer: .*? (?P<path>\S+?):(?P<line>\d+)(?::\d+)?(?: in |$)")


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as the runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: like a message, and `:` and `,` too, which end a property."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(level: str, message: str, *, title: str, file: str | None = None,
                     line: int | None = None) -> str:
    props = [f"file={escape_property(file)}"] if file else []
    if file and line is not None:
        props.append(f"line={line}")
    props.append(f"title={escape_property(title)}")
    return f"::{level} {','.join(props)}::{escape_data(message)}"


def _stage_findings(stage: Mapping[str, object]) -> Iterator[tuple[str, str, str | None, int | None]]:
    """(level, message, file, line) for each finding of one stage that has a place in a file."""
    details = stage.get("details")
    lines = [d for d in details if isinstance(d, str)] if isinstance(details, list) else []
    kind = stage.get("kind")
    for detail in lines:
        if kind == "lint" and (lint := _LINT_AT.fullmatch(detail)):
            if lint["origin"] == "preexisting":
                continue
            level = "warning" if lint["severity"].lower() in ("warning", "advice") else "error"
            yield level, lint["message"], lint["path"], int(lint["line"])
        elif kind == "tsan" and (tsan := _TSAN_AT.match(detail)):
            yield "error", detail, tsan["path"], int(tsan["line"])


def annotation_lines(data: Mapping[str, object]) -> list[str]:
    """The workflow commands for every failed or errored stage of one `verify --json` object."""
    out: list[str] = []
    for stage in _objects(data.get("stages")):
        name = str(stage.get("name", "?"))
        if stage.get("status") not in _FAILED:
            continue
        findings = list(_stage_findings(stage))
        for level, message, file, line in findings[:MAX_ANNOTATIONS]:
            out.append(workflow_command(level, message, title=name, file=file, line=line))
        if len(findings) > MAX_ANNOTATIONS:
            out.append(workflow_command("error", f"{len(findings) - MAX_ANNOTATIONS} more finding(s); "
                                        "the stage log has them all", title=name))
        if not findings:
            log = stage.get("log")
            where = f" (log {log})" if isinstance(log, str) and log else ""
            out.append(workflow_command("error", f"{stage.get('status')}: {stage.get('reason') or ''}{where}",
                                        title=name))
    return out


def _objects(value: object) -> list[Mapping[str, object]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
