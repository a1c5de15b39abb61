"""Evidence: what a verify run did and found, stored so documents can cite it and never outlive it.

`audit/runs/<run-id>/evidence.json` plus `logs/`; `audit/runs/latest` holds the newest run id. A run is
never overwritten, and a stage result counts only for the series hashes and base it was made on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpspatch.errors import StateError
from mpspatch.files import atomic_write_text
from mpspatch.ids import CommitSha, ContentSha256, RunId, TreeSha
from mpspatch.stages import StageResult

EVIDENCE_VERSION = 1
LATEST = "latest"


@dataclass(frozen=True)
class SeriesPatchRef:
    path: str  # relative to the config folder
    sha256: ContentSha256


@dataclass(frozen=True)
class EvidenceRun:
    run_id: RunId
    created_at: str  # ISO 8601 UTC
    series: tuple[SeriesPatchRef, ...]
    base: CommitSha | None
    base_ref: str
    onto: CommitSha | None  # set when the tree was a rebase result
    tree: TreeSha | None  # the patched tree the stages ran on
    tools: tuple[tuple[str, str], ...]  # (tool, version), e.g. ("git", "2.39.5")
    stages: tuple[StageResult, ...]

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def made_for(self, series_sha256: Sequence[str], base: str | None) -> bool:
        """Whether this evidence was made for exactly this series content and base commit."""
        return [p.sha256 for p in self.series] == list(series_sha256) and self.base == base


def run_dir(evidence_dir: Path, run_id: str) -> Path:
    return evidence_dir / run_id


def to_json(run: EvidenceRun) -> str:
    body: dict[str, Any] = {
        "version": EVIDENCE_VERSION,
        "run_id": run.run_id,
        "created_at": run.created_at,
        "series": [{"path": p.path, "sha256": p.sha256} for p in run.series],
        "base": run.base,
        "base_ref": run.base_ref,
        "onto": run.onto,
        "tree": run.tree,
        "tools": dict(run.tools),
        "stages": [_stage_json(s) for s in run.stages],
    }
    return json.dumps(body, indent=2) + "\n"


def _stage_json(s: StageResult) -> dict[str, Any]:
    return {
        "name": s.name, "kind": s.kind, "status": s.status, "reason": s.reason, "duration_s": round(s.duration_s, 3),
        "counts": dict(s.counts), "log": s.log, "log_sha256": s.log_sha256,
        "commands": [list(c) for c in s.commands], "env": dict(s.env), "started_at": s.started_at,
        "finished_at": s.finished_at, "cache_key": s.cache_key, "cached_from": s.cached_from,
        "details": list(s.details),
    }


def _stage_from(d: dict[str, Any]) -> StageResult:
    return StageResult(
        name=str(d["name"]), kind=str(d["kind"]), status=str(d["status"]), reason=str(d["reason"]),
        duration_s=float(d["duration_s"]), counts=tuple((str(k), int(v)) for k, v in d["counts"].items()),
        log=d.get("log"), log_sha256=d.get("log_sha256"),
        commands=tuple(tuple(str(a) for a in c) for c in d["commands"]),
        env=tuple((str(k), str(v)) for k, v in d["env"].items()), started_at=str(d["started_at"]),
        finished_at=str(d["finished_at"]), cache_key=str(d["cache_key"]), cached_from=d.get("cached_from"),
        details=tuple(str(x) for x in d.get("details", [])),
    )


def write_run(evidence_dir: Path, run: EvidenceRun) -> Path:
    """Write evidence.json for a new run and point `latest` at it. An existing run is never overwritten."""
    target = run_dir(evidence_dir, run.run_id) / "evidence.json"
    if target.exists():
        raise StateError(f"{target}: evidence for run {run.run_id} exists already; runs are never overwritten")
    atomic_write_text(target, to_json(run))
    atomic_write_text(evidence_dir / LATEST, run.run_id + "\n")
    return target


def read_run(path: Path) -> EvidenceRun:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("version") != EVIDENCE_VERSION:
            raise ValueError(f"version {d.get('version')!r}")
        return EvidenceRun(
            run_id=RunId(str(d["run_id"])), created_at=str(d["created_at"]),
            series=tuple(SeriesPatchRef(str(p["path"]), ContentSha256(str(p["sha256"]))) for p in d["series"]),
            base=d.get("base"), base_ref=str(d["base_ref"]), onto=d.get("onto"), tree=d.get("tree"),
            tools=tuple((str(k), str(v)) for k, v in d["tools"].items()),
            stages=tuple(_stage_from(s) for s in d["stages"]),
        )
    except FileNotFoundError:
        raise StateError(f"{path}: evidence file is missing; run `mpspatch verify`") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{path}: evidence is not readable ({exc}); rerun `mpspatch verify`") from None


def latest_run(evidence_dir: Path) -> EvidenceRun | None:
    pointer = evidence_dir / LATEST
    if not pointer.exists():
        return None
    run_id = pointer.read_text(encoding="utf-8").strip()
    return read_run(run_dir(evidence_dir, run_id) / "evidence.json")


def all_runs(evidence_dir: Path) -> tuple[EvidenceRun, ...]:
    """Every stored run, oldest first (run ids sort by time)."""
    if not evidence_dir.is_dir():
        return ()
    return tuple(read_run(p) for p in sorted(evidence_dir.glob("*/evidence.json")))
