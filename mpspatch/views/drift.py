"""`drift`: the forecast tables and the JSON model of the contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpspatch.views.console import escape, out, pr_label, print_table

if TYPE_CHECKING:
    from mpspatch.model.blame import RegionBlame
    from mpspatch.model.history import UpstreamCommit
    from mpspatch.operations.drift import DriftReport

_OUTCOME_STYLE = {"clean": "green", "conflict": "bold red", "absorbed": "cyan", "partly-absorbed": "yellow"}


@dataclass(frozen=True)
class UpstreamCommitJson:
    sha: str
    subject: str
    pull_request: int | None
    paths: tuple[str, ...]

    @classmethod
    def of(cls, commit: UpstreamCommit) -> UpstreamCommitJson:
        return cls(sha=commit.sha, subject=commit.subject, pull_request=commit.pull_request, paths=tuple(commit.paths))


@dataclass(frozen=True)
class CauseJson:
    sha: str
    pull_request: int | None
    subject: str

    @classmethod
    def of(cls, commit: UpstreamCommit) -> CauseJson:
        return cls(sha=commit.sha, pull_request=commit.pull_request, subject=commit.subject)


@dataclass(frozen=True)
class RegionBlameJson:
    lines: tuple[int, int]  # START, END in the onto version of the file
    causes: tuple[CauseJson, ...]


def blame_json(regions: tuple[RegionBlame, ...]) -> tuple[RegionBlameJson, ...]:
    """The contract's `blame` list, shared by `drift --json` and `rebase --json`."""
    return tuple(RegionBlameJson(lines=r.lines, causes=tuple(CauseJson.of(c) for c in r.causes)) for r in regions)


def region_causes(regions: tuple[RegionBlame, ...]) -> list[str]:
    """One line per region for the terminal: its onto lines and the PRs (or SHAs) that wrote them."""
    return [f"lines {r.lines[0]}-{r.lines[1]}: "
            + (", ".join(pr_label(c.pull_request) if c.pull_request is not None else c.sha[:12] for c in r.causes)
               or "no upstream commit (older than the base)")
            for r in regions]


@dataclass(frozen=True)
class DriftConflictJson:
    path: str
    regions: int
    patch: str
    kinds: tuple[str, ...]
    assumed: bool
    pull_requests: tuple[int, ...]
    upstream_commits: tuple[UpstreamCommitJson, ...]
    blame: tuple[RegionBlameJson, ...]
    touched: tuple[CauseJson, ...]  # commits that touched the file without writing any region's lines


@dataclass(frozen=True)
class DriftAbsorbedJson:
    path: str
    pull_requests: tuple[int, ...]
    whole_file: bool
    hunks: int
    of_hunks: int
    upstream_commits: tuple[str, ...]  # SHAs


@dataclass(frozen=True)
class LandedPatchJson:
    patch: str
    sha: str
    pull_request: int | None


@dataclass(frozen=True)
class FileDriftJson:
    path: str
    outcome: str
    regions: int
    hunks: int
    absorbed_hunks: int
    pull_requests: tuple[int, ...]


@dataclass(frozen=True)
class DriftCommitJson(UpstreamCommitJson):
    conflicting: bool
    absorbed: bool


@dataclass(frozen=True)
class DriftJson:
    status: str
    base: str
    base_ref: str
    onto: str
    onto_ref: str
    patches: tuple[str, ...]
    stopped_at: str | None
    stops: tuple[str, ...]
    conflicts: tuple[DriftConflictJson, ...]
    absorbed: tuple[DriftAbsorbedJson, ...]
    landed_patches: tuple[LandedPatchJson, ...]
    files: tuple[FileDriftJson, ...]
    upstream_commits: tuple[DriftCommitJson, ...]


def _prs(commits: tuple[UpstreamCommit, ...]) -> tuple[int, ...]:
    return tuple(u.pull_request for u in commits if u.pull_request is not None)


def drift_json(report: DriftReport) -> DriftJson:
    return DriftJson(
        status=report.status,
        base=report.base,
        base_ref=report.base_ref,
        onto=report.onto,
        onto_ref=report.onto_ref,
        patches=tuple(report.patches),
        stopped_at=report.stopped_at,
        stops=tuple(report.stops),
        conflicts=tuple(
            DriftConflictJson(path=c.path, regions=c.regions, patch=c.patch, kinds=tuple(c.kinds), assumed=c.assumed,
                              pull_requests=_prs(c.upstream),
                              upstream_commits=tuple(UpstreamCommitJson.of(u) for u in c.upstream),
                              blame=blame_json(c.blame), touched=tuple(CauseJson.of(u) for u in c.touched))
            for c in report.conflicts
        ),
        absorbed=tuple(
            DriftAbsorbedJson(path=a.path, pull_requests=tuple(a.pull_requests), whole_file=a.whole_file,
                              hunks=a.hunks, of_hunks=a.of_hunks, upstream_commits=tuple(u.sha for u in a.landed_by))
            for a in report.absorbed
        ),
        landed_patches=tuple(LandedPatchJson(patch=m.patch, sha=m.upstream.sha, pull_request=m.upstream.pull_request)
                             for m in report.landed_patches),
        files=tuple(FileDriftJson(path=f.path, outcome=f.outcome, regions=f.regions, hunks=f.hunks,
                                  absorbed_hunks=f.absorbed_hunks, pull_requests=_prs(f.upstream))
                    for f in report.files),
        upstream_commits=tuple(
            DriftCommitJson(sha=d.commit.sha, subject=d.commit.subject, pull_request=d.commit.pull_request,
                            paths=tuple(d.commit.paths), conflicting=d.conflicting, absorbed=d.absorbed)
            for d in report.upstream
        ),
    )


def show_drift(report: DriftReport) -> None:
    from rich.table import Table

    console = out()
    console.print(f"[bold]{escape(report.base_ref)}[/] {report.base[:12]} -> [bold]{escape(report.onto_ref)}[/] "
                  f"{report.onto[:12]}  ({len(report.upstream)} upstream commits touch the patched files)")
    table = Table(title="Forecast per file")
    table.add_column("File", no_wrap=True)  # a path is never folded
    table.add_column("Outcome")
    table.add_column("Regions", justify="right")
    table.add_column("Already upstream", justify="right")
    table.add_column("Upstream PRs since the base")
    for f in report.files:
        prs = ", ".join(pr_label(u.pull_request) for u in f.upstream if u.pull_request is not None)
        bare = sum(1 for u in f.upstream if u.pull_request is None)
        if bare:
            prs = f"{prs} +{bare} without PR" if prs else f"{bare} without PR"
        table.add_row(escape(f.path), f"[{_OUTCOME_STYLE[f.outcome]}]{f.outcome}[/]", str(f.regions or ""),
                      f"{f.absorbed_hunks}/{f.hunks}" if f.absorbed_hunks else "", escape(prs))
    print_table(table, console)
    if report.conflicts:
        causes = Table(title="Conflict regions and the upstream commits behind them (lines of the onto version)")
        causes.add_column("File", no_wrap=True)
        causes.add_column("Patch")
        causes.add_column("Regions: causes", overflow="fold")
        causes.add_column("Also touched the file")
        for c in report.conflicts:
            touched = ", ".join(pr_label(u.pull_request) if u.pull_request is not None else u.sha[:12]
                                for u in c.touched)
            causes.add_row(escape(c.path), escape(c.patch), escape("\n".join(region_causes(c.blame)) or "(no markers)"),
                           escape(touched))
        print_table(causes, console)
    if report.upstream:
        commits = Table(title="Upstream commits touching patched files (newest first)")
        commits.add_column("Commit")
        commits.add_column("PR")
        commits.add_column("Subject", overflow="fold")
        commits.add_column("Patched files", no_wrap=True)
        commits.add_column("Marks")
        for d in report.upstream:
            marks = ", ".join(m for m, on in (("[red]conflicts[/]", d.conflicting), ("[cyan]absorbed[/]", d.absorbed))
                              if on)
            commits.add_row(d.commit.sha[:12], pr_label(d.commit.pull_request), escape(d.commit.subject),
                            escape("\n".join(d.commit.paths)), marks)
        print_table(commits, console)
    for m in report.landed_patches:
        console.print(f"{m.patch} landed whole upstream as {m.upstream.sha[:12]} {pr_label(m.upstream.pull_request)} "
                      "(same patch-id)", markup=False)
    if report.conflicts:
        console.print(f"[bold red]{len(report.conflicts)} conflict(s) predicted[/]: `mpspatch rebase --onto "
                      f"{escape(report.onto_ref)}` will stop on {escape(', then '.join(report.stops))}")
    else:
        console.print(f"[green]no conflicts predicted[/] onto {escape(report.onto_ref)}")
