"""`mpspatch drift`: forecast the next rebase without changing anything, and name the upstream work behind it.

The user's clone is only read (two `rev-parse` calls resolve base and onto). Everything else runs in the
shadow repository, which borrows the clone's objects: the series becomes commits there, the replay is a
chain of `git merge-tree` merges, and the only writes are objects in the shadow's own store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mpspatch import git, history
from mpspatch.config import Config
from mpspatch.history import AlreadyUpstream, MergeForecast, UpstreamCommit
from mpspatch.ids import CommitSha, TreePath
from mpspatch.rebase import resolve_base, resolve_ref
from mpspatch.series import Patch, parse_series

# rebase-helper's per-file vocabulary, plus one for files whose patch the forecast could not reach.
CLEAN, CONFLICT, ABSORBED, PARTLY_ABSORBED = "clean", "conflict", "absorbed", "partly absorbed"
OUTCOMES = (CLEAN, CONFLICT, ABSORBED, PARTLY_ABSORBED)
TEMPLATE = "drift_report.md.j2"


@dataclass(frozen=True)
class DriftConflict:
    path: TreePath
    regions: int
    patch: str  # the patch file the rebase stops on for this path
    kinds: tuple[str, ...]  # git's conflict types ("contents", "modify/delete", ...)
    upstream: tuple[UpstreamCommit, ...]  # base..onto commits touching the path, newest first
    assumed: bool  # an earlier stop in this file had to be taken as resolved to the patch's side


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
    outcome: str  # one of OUTCOMES
    regions: int  # conflict regions over every stop in this file
    hunks: int  # hunks of the series' change to this file
    absorbed_hunks: int
    upstream: tuple[UpstreamCommit, ...]  # base..onto commits touching the file, newest first


@dataclass(frozen=True)
class DriftCommit:
    commit: UpstreamCommit
    conflicting: bool  # touches a file the rebase will stop on
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
    def status(self) -> str:
        return CONFLICT if self.conflicts else CLEAN

    @property
    def stopped_at(self) -> str | None:
        return self.stops[0] if self.stops else None

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)


def compute_drift(config: Config, onto_ref: str | None = None) -> DriftReport:
    checkout = git.require_repo(config.upstream.checkout)
    base, base_ref = resolve_base(config, checkout)
    onto_ref = onto_ref or config.upstream.target
    onto = resolve_ref(checkout, onto_ref)
    patches = parse_series(config.series.patches)
    shadow = git.ensure_shadow(config)
    commits = git.series_commits(shadow, base, config.series.patches)
    forecast = history.merge_forecast(shadow, base, commits, onto)
    paths = _series_paths(patches)
    upstream = history.upstream_commits(shadow, base, onto, paths)
    already = history.already_upstream(shadow, base, commits, onto, forecast.result_tree, upstream)
    return build_report(
        base=base, base_ref=base_ref, onto=onto, onto_ref=onto_ref, patches=patches, forecast=forecast,
        upstream=upstream, already=already, pr_url=pull_request_url(config.upstream.url),
    )


def _series_paths(patches: tuple[Patch, ...]) -> tuple[str, ...]:
    """Every path the series names, renamed-from paths included (upstream may have touched those)."""
    found: dict[str, None] = {}
    for patch in patches:
        for change in patch.files:
            found.setdefault(change.path, None)
            if change.old_path:
                found.setdefault(change.old_path, None)
    return tuple(found)


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
) -> DriftReport:
    """Join the forecast, the upstream log and the absorption check into one per-file and per-commit view."""
    names = tuple(p.path.name for p in patches)
    by_sha = {c.sha: c for c in upstream}
    conflicts = tuple(
        DriftConflict(
            path=c.path, regions=c.regions, patch=names[c.patch_index], kinds=c.kinds,
            upstream=history.touching(upstream, c.path),
            assumed=c.path in forecast.steps[c.patch_index].assumed,
        )
        for c in forecast.conflicts
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
    for path in sorted({c.path for p in patches for c in p.files}):
        found = already.get(path)
        if path in conflicted:
            outcome = CONFLICT
        elif found is not None and found.whole:
            outcome = ABSORBED
        elif found is not None and found.partly:
            outcome = PARTLY_ABSORBED
        else:
            outcome = CLEAN
        files.append(FileDrift(
            path=TreePath(path), outcome=outcome,
            regions=sum(c.regions for c in conflicts if c.path == path),
            hunks=found.hunks if found else _hunk_count(patches, path),
            absorbed_hunks=found.absorbed_hunks if found else 0,
            upstream=history.touching(upstream, path),
        ))
    landed = already.landed_by
    marks = tuple(
        DriftCommit(commit=c, conflicting=bool(conflicted & set(c.paths)), absorbed=c.sha in landed)
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
    package = Path(__file__).resolve().parent
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
    text = env.get_template(TEMPLATE).render(report=report, generated_by=generated_by, outcomes=OUTCOMES)
    return text.rstrip("\n") + "\n"


def _md_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, newlines flattened."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
