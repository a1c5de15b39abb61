"""`mpspatch drift`: forecast the next rebase without changing anything, and name the upstream work behind it.

The user's clone is only read (two `rev-parse` calls resolve base and onto). Everything else runs in the
shadow repository, which borrows the clone's objects: the series becomes commits there, the replay is a
chain of `git merge-tree` merges, and the only writes are objects in the shadow's own store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.ids import CommitSha, TreePath
from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.git import objects
from mpspatch.git import verbs as git
from mpspatch.model import history
from mpspatch.model.absorbed import AlreadyUpstream, already_upstream
from mpspatch.model.blame import BlamedConflict, FileBlame, RegionBlame, blame_conflicts, name_causes
from mpspatch.model.history import MergeForecast, UpstreamCommit
from mpspatch.model.series import Patch, load_series, series_paths
from mpspatch.model.series_cache import cached_build
from mpspatch.model.workspace import Workspace


class FileOutcome(StrEnum):
    """rebase-helper's per-file vocabulary, in the order the report lists them."""

    CLEAN = "clean"
    CONFLICT = "conflict"
    ABSORBED = "absorbed"
    PARTLY_ABSORBED = "partly-absorbed"


OUTCOMES = tuple(FileOutcome)
TEMPLATE = "drift_report.md.j2"
@dataclass(frozen=True)
class DriftConflict:
    path: TreePath
    regions: int
    patch: str  # the patch file the rebase stops on for this path
    kinds: tuple[str, ...]  # git's conflict types ("contents", "modify/delete", ...)
    upstream: tuple[UpstreamCommit, ...]  # base..onto commits touching the path, newest first
    assumed: bool  # an earlier stop in this file had to be taken as resolved to the patch's side
    blame: tuple[RegionBlame, ...] = ()  # per region: its lines in onto and the upstream commits that wrote them
    touched: tuple[UpstreamCommit, ...] = ()  # commits of `upstream` that are no region's cause


@dataclass(frozen=True)
class DriftAbsorbed:
    path: TreePath
    whole_file: bool
    hunks: int  # hunks of the series' change to this file that onto already holds
    of_hunks: int
    landed_by: tuple[UpstreamCommit, ...]  # the upstream commits that carry those hunks, newest first

    @property
    def pull_requests(self) -> tuple[int, ...]:
        return history.pull_requests(self.landed_by)


@dataclass(frozen=True)
class FileDrift:
    path: TreePath
    outcome: FileOutcome
    regions: int  # conflict regions over every stop in this file
    hunks: int  # hunks of the series' change to this file
    absorbed_hunks: int
    upstream: tuple[UpstreamCommit, ...]  # base..onto commits touching the file, newest first


@dataclass(frozen=True)
class DriftCommit:
    commit: UpstreamCommit
    conflicting: bool  # wrote lines of a conflict region (a cause), or touches a conflicted file without regions
    absorbed: bool  # lands a change the series also makes


@dataclass(frozen=True)
class PatchLanded:
    patch: str
    upstream: UpstreamCommit  # has the same `git patch-id --stable` as the whole patch


@dataclass(frozen=True)
class DriftReport:
    base: CommitSha
    base_ref: str
    onto: CommitSha
    onto_ref: str
    patches: tuple[str, ...]  # patch file names, in series order
    files: tuple[FileDrift, ...]
    conflicts: tuple[DriftConflict, ...]  # every stop, in replay order
    absorbed: tuple[DriftAbsorbed, ...]
    upstream: tuple[DriftCommit, ...]  # newest first
    landed_patches: tuple[PatchLanded, ...]
    stops: tuple[str, ...]  # the patches the rebase will stop on, in order
    pr_url: str | None  # prefix a PR number completes to a link, when the upstream is on GitHub

    @property
    def status(self) -> FileOutcome:
        """The whole forecast in the per-file words: `conflict` when any file stops the rebase, else `clean`."""
        return FileOutcome.CONFLICT if self.conflicts else FileOutcome.CLEAN

    @property
    def stopped_at(self) -> str | None:
        return self.stops[0] if self.stops else None

    def count(self, outcome: FileOutcome) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)


def compute_drift(ws: Workspace, onto_ref: str | None = None, steps: Steps = QUIET) -> DriftReport:
    """Forecast the rebase of the configured series onto `onto_ref` (default: [upstream].target).

    The git calls that do not depend on each other run side by side: a forecast is a couple of dozen
    short git processes, and waiting for them one by one would cost more than the merge itself.
    """
    config = ws.config
    steps.step("resolving the target")
    with ThreadPoolExecutor(max_workers=4) as pool:
        shadow_job = pool.submit(lambda: ws.shadow)  # also says so when the clone is missing
        span_job = pool.submit(ws.resolve_onto, onto_ref)
        checked = pool.submit(objects.require_merge_tree)
        patches = load_series(config)
        shadow = shadow_job.result()
        span = span_job.result()
        base, base_ref, onto, onto_ref = span.base, span.base_ref, span.onto, span.onto_ref
        # The shadow's commit-graph, with changed-path filters, covering onto: upstream's log and the region
        # blames then skip the commits that cannot touch their paths. Written once per onto (a covered history
        # costs one quick call).
        graph = pool.submit(objects.index_history, shadow, [onto, base])
        start_job = pool.submit(history.forecast_start, shadow, base, onto)
        steps.step(f"building the series ({len(patches)} patches)")
        commits = series_commits_cached(shadow, base, config.series.patches)
        upstream_job = pool.submit(lambda: history.upstream_commits_indexed(
            shadow, base, onto, series_paths(patches), indexed=graph.result()))
        diff_job = pool.submit(git.diff_trees, shadow, base, commits[-1])
        checked.result()
        steps.step(f"forecasting the merge onto {onto[:12]}")
        forecast = history.merge_forecast(shadow, base, commits, onto, git_checked=True, start=start_job.result())
        blame_job = pool.submit(_blame_conflicts, shadow, forecast, graph)  # beside the upstream log: needs none
        upstream = upstream_job.result()
        steps.step(f"reading upstream history ({len(upstream)} commits)")
        already = already_upstream(shadow, base, commits, onto, forecast.result_tree, upstream,
                                   series_diff=diff_job.result(), in_place=forecast.in_place)
        blames = name_causes(blame_job.result(), upstream)
    return build_report(
        base=base, base_ref=base_ref, onto=onto, onto_ref=onto_ref, patches=patches, forecast=forecast,
        upstream=upstream, already=already, pr_url=pull_request_url(config.upstream.url), blames=blames,
    )


def _blame_conflicts(shadow: Path, forecast: MergeForecast, graph: Future[bool]) -> tuple[BlamedConflict, ...]:
    """git's blame of the forecast's conflicts (model/blame.py), over base..onto, once `graph` (the
    commit-graph write) is done: each blame then skips the commits that cannot touch its file."""
    if not forecast.conflicts:
        return ()
    graph.result()
    return blame_conflicts(shadow, forecast)


def series_commits_cached(shadow: Path, base: CommitSha, patches: Sequence[Path]) -> tuple[CommitSha, ...]:
    """series_commits, remembered per (base, patch names and bytes) in the shadow (model/series_cache.py,
    shared with rebase): the commits are deterministic, so the cache can only ever save the apply."""
    return cached_build(shadow, base, patches).commits


def build_report(
    *,
    base: CommitSha,
    base_ref: str,
    onto: CommitSha,
    onto_ref: str,
    patches: tuple[Patch, ...],
    forecast: MergeForecast,
    upstream: tuple[UpstreamCommit, ...],
    already: AlreadyUpstream,
    pr_url: str | None,
    blames: tuple[FileBlame, ...] = (),
) -> DriftReport:
    """Join the forecast, the upstream log and the absorption check into one per-file and per-commit view.

    `blames` is forecast_blames(forecast), one per conflict; without it every conflict's commits are `touched`.
    """
    names = tuple(p.path.name for p in patches)
    by_sha = {c.sha: c for c in upstream}
    conflicts = tuple(
        DriftConflict(
            path=c.path, regions=c.regions, patch=names[c.patch_index], kinds=c.kinds,
            upstream=history.touching(upstream, c.path),
            assumed=c.path in forecast.steps[c.patch_index].assumed,
            blame=b.regions if b is not None else (),
            touched=b.touched if b is not None else history.touching(upstream, c.path),
        )
        for c, b in zip(forecast.conflicts, blames or (None,) * len(forecast.conflicts), strict=True)
    )
    absorbed = tuple(
        DriftAbsorbed(
            path=a.path, whole_file=a.whole, hunks=a.absorbed_hunks, of_hunks=a.hunks,
            landed_by=tuple(by_sha[s] for s in a.landed_by if s in by_sha),
        )
        for a in already.files
    )
    conflicted = {c.path for c in conflicts}
    files = []
    for path in series_paths(patches, renamed_from=False):
        found = already.get(path)
        if path in conflicted:
            outcome = FileOutcome.CONFLICT
        elif found is not None and found.whole:
            outcome = FileOutcome.ABSORBED
        elif found is not None and found.partly:
            outcome = FileOutcome.PARTLY_ABSORBED
        else:
            outcome = FileOutcome.CLEAN
        files.append(FileDrift(
            path=TreePath(path), outcome=outcome,
            regions=sum(c.regions for c in conflicts if c.path == path),
            hunks=found.hunks if found else _hunk_count(patches, path),
            absorbed_hunks=found.absorbed_hunks if found else 0,
            upstream=history.touching(upstream, path),
        ))
    landed = already.landed_by
    # A commit conflicts when it is a cause of a region; a conflict without regions to blame (modify/delete,
    # or no blame at all) counts every commit touching the file.
    causes = {u.sha for c in conflicts for r in c.blame for u in r.causes}
    unblamed = {c.path for c in conflicts if not c.blame}
    marks = tuple(
        DriftCommit(commit=c, conflicting=c.sha in causes or bool(unblamed & set(c.paths)), absorbed=c.sha in landed)
        for c in upstream
    )
    return DriftReport(
        base=base, base_ref=base_ref, onto=onto, onto_ref=onto_ref, patches=names, files=tuple(files),
        conflicts=conflicts, absorbed=absorbed, upstream=marks,
        landed_patches=tuple(
            PatchLanded(patch=names[m.patch_index], upstream=by_sha[m.upstream])
            for m in already.patch_ids if m.upstream in by_sha
        ),
        stops=tuple(names[i] for i in forecast.stops), pr_url=pr_url,
    )


def _hunk_count(patches: tuple[Patch, ...], path: str) -> int:
    return sum(len(c.hunks) for p in patches for c in p.files if c.path == path)


def pull_request_url(url: str) -> str | None:
    """`https://github.com/OWNER/REPO/pull/` for a GitHub upstream URL (https or ssh form), else None."""
    match = re.match(r"^(?:https://github\.com/|git@github\.com:)([^/\s]+)/([^/\s]+?)(?:\.git)?/?$", url)
    return f"https://github.com/{match.group(1)}/{match.group(2)}/pull/" if match else None


# --------------------------------------------------------------------------------------------- markdown


def template_dir() -> Path:
    """templates/ of a source checkout, or the copy a wheel carries inside the package."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_templates", package.parent / "templates"):
        if (candidate / TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError(f"{TEMPLATE} is missing from the installation; reinstall mpspatch")


def render_markdown(report: DriftReport, generated_by: str = "mpspatch drift") -> str:
    """The drift report as GitHub-flavoured Markdown (a job summary), a pure function of the report."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(template_dir()),
        undefined=StrictUndefined,
        autoescape=False,  # Markdown, not HTML; table cells are escaped by the filter below
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = _md_cell
    env.filters["text"] = md_text
    text = env.get_template(TEMPLATE).render(report=report, generated_by=generated_by, outcomes=OUTCOMES)
    return text.rstrip("\n") + "\n"


def _md_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, newlines flattened, no backtick to end a code span."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def md_text(value: object) -> str:
    """Untrusted text (an upstream commit subject) as inert Markdown in a table cell: no HTML, image or link.

    `<`, `>` and `&` become entities (no tag, no autolink); `![` and `](` get a backslash, so `[MPS]` stays
    as it reads while `[x](url)` and `![x](img)` are no longer a link or an image.
    """
    text = str(value).replace("\n", " ").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")
    return text.replace("![", "!\\[").replace("](", "]\\(")
