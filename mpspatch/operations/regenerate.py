"""Bring a patch into the series (`import`) and re-derive it from its source of truth (`regenerate`).

Both write patches in mpspatch's canonical form (git.PATCH_DIFF_ARGS): full `index` lines, no volatile
headers, stable order. Both refuse paths outside `[series].allowed_paths`, as the shell script they replace did.

Sources:
- a patch file, or a URL (http, https, file) such as the canonical patch in the public dropbox/dML repository;
- a fork checkout: `git diff BASE` of its working tree (what the old script ran);
- for `regenerate` without `--from`: the series itself, applied at its base in the shadow repository.
"""

from __future__ import annotations

import difflib
import tempfile
import time
import urllib.error
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError
from mpspatch.foundation.files import atomic_write_bytes
from mpspatch.foundation.ids import CommitSha
from mpspatch.git import forkpoint
from mpspatch.git import verbs as git
from mpspatch.git.commits import SeriesInconsistentError, build_series
from mpspatch.model.series import (
    Patch,
    make_lock,
    outside_allowed,
    parse_patch_bytes,
    parse_series,
    require_utf8,
    write_lock,
)
from mpspatch.model.state import keep_previous
from mpspatch.model.workspace import Workspace, resolve_base, resolve_ref

# The public home of the cumulative patch is dropbox/dML, folder metal_mps_parallel/, file
# patches/cumulative-v2.9.1-to-mps-stream-pool.patch. The branch name is GitHub's default; pass a URL to
# import another revision.
CANONICAL_URL = ("https://raw.githubusercontent.com/dropbox/dML/main/metal_mps_parallel/patches/"
                 "cumulative-v2.9.1-to-mps-stream-pool.patch")
MAX_DOWNLOAD = 64 * 1024 * 1024  # the real patch is ~300 KB; anything near this limit is not a patch
DIFF_SUMMARY_LINES = 200


class ImportKind(StrEnum):
    FILE = "file"
    URL = "url"
    FORK = "fork"  # the diff of a fork's working tree against its base


@dataclass(frozen=True)
class ImportResult:
    source: str
    kind: ImportKind
    patch: Path  # the series patch that was written
    files: int
    insertions: int
    deletions: int
    canonical: bool  # rewritten in canonical form after applying it at the base
    base: CommitSha | None  # the base it was checked against (and locked to), when the clone was available
    previous: Path | None  # the earlier version of the patch file, kept
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PatchSync:
    path: Path
    in_sync: bool
    added: int  # lines the regenerated patch has that the file does not
    removed: int
    diff: str  # unified diff of the patch files, cut to DIFF_SUMMARY_LINES lines


@dataclass(frozen=True)
class RegenerateResult:
    source: str
    check: bool
    base: CommitSha
    patches: tuple[PatchSync, ...]
    written: tuple[Path, ...]
    notes: tuple[str, ...]

    @property
    def in_sync(self) -> bool:
        return all(p.in_sync for p in self.patches)


# ------------------------------------------------------------------------------------------------ sources


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https", "file")


DOWNLOAD_TRIES = 3
DOWNLOAD_BACKOFF_S = 2.0  # wait 2 s, then 4 s, between tries


def url_for_message(url: str) -> str:
    """`url` without `user:password@`, for a message or a log."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _transient(exc: Exception) -> bool:
    """Worth another try: the network or the server hiccuped (not a 404, not a bad URL)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    return isinstance(exc, urllib.error.URLError | OSError)


def download(url: str, timeout: float = 60) -> bytes:
    """The bytes at `url` (http, https or file), or an InputError saying what to do instead.

    A network failure or a 5xx/429 answer is tried again, DOWNLOAD_TRIES times in all, with backoff."""
    import urllib.request  # here, not at the top: http.client and ssl cost every command's start-up

    fix = "check the URL, or download the file yourself and import it by path"
    shown = url_for_message(url)
    tries = 1 if urllib.parse.urlsplit(url).scheme == "file" else DOWNLOAD_TRIES
    for attempt in range(1, tries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # only http(s)/file: see is_url
                data: bytes = response.read(MAX_DOWNLOAD + 1)
            break
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if attempt < tries and _transient(exc):
                time.sleep(DOWNLOAD_BACKOFF_S * 2 ** (attempt - 1))
                continue
            after = f" after {attempt} tries" if attempt > 1 else ""
            if isinstance(exc, urllib.error.HTTPError):
                raise InputError(f"{shown}: download failed with HTTP {exc.code} {exc.reason}{after}; {fix}") from None
            reason = getattr(exc, "reason", exc)
            raise InputError(f"{shown}: download failed ({reason}){after}; {fix}") from None
    if len(data) > MAX_DOWNLOAD:
        raise InputError(f"{shown}: more than {MAX_DOWNLOAD // (1024 * 1024)} MiB, not a patch; {fix}")
    return data


FORK_POINT = "fork-point"  # `--base fork-point`: a fork's own merge-base with the upstream history


def fork_diff(config: Config, fork: Path, base_ref: str | None) -> tuple[bytes, CommitSha, str, list[str]]:
    """`git diff BASE` of a fork's working tree in canonical form, its base and base ref, and notes.

    A fork whose HEAD sits on upstream commits the base lacks (it tracks `main`, or merged upstream in) is
    refused: `git diff BASE` would fold every upstream change since the base into the patch. With
    `base_ref == FORK_POINT` the base is that fork point instead.
    """
    repo = git.require_repo(fork, role="fork checkout")
    notes: list[str] = []
    if base_ref == FORK_POINT:
        base, ref = _fork_point(config, repo)
    else:
        base, ref = (resolve_ref(repo, base_ref), base_ref) if base_ref else resolve_base(config, repo)
        if config.upstream.checkout.exists():
            _refuse_off_base(config, repo, base, ref)
        else:
            notes.append(f"{config.upstream.checkout} does not exist, so the fork was not checked for upstream "
                         "commits beyond the base")
    # Reading a fork must not even refresh its index: both verbs run without optional locks.
    text = git.worktree_patch_text(repo, base)
    untracked = git.untracked_files(repo, list(config.series.allowed_paths) or ["."])
    if untracked:
        shown = ", ".join(untracked[:5]) + (" ..." if len(untracked) > 5 else "")
        notes.append(f"{len(untracked)} untracked file(s) under allowed_paths are not in the patch "
                     f"(`git add -N` them in the fork to include them): {shown}")
    return text.encode("utf-8"), base, ref, notes


def _describe(config: Config, fork: Path, point: CommitSha) -> tuple[str, str]:
    """(how a message shows `point`, the ref to pass as --base for it)."""
    tag, branch = forkpoint.upstream_names(git.require_repo(config.upstream.checkout), fork, point)
    name = tag or branch
    return (f"{point[:12]} ({name})", tag or point[:12]) if name else (point[:12], point[:12])


def _refuse_off_base(config: Config, fork: Path, base: CommitSha, ref: str) -> None:
    checkout = git.require_repo(config.upstream.checkout)
    points = forkpoint.upstream_points(checkout, fork, base)
    if not points or points == (base,):
        return
    lead = (f"{fork}: the fork's HEAD holds upstream commits the base {base[:12]} ({ref}) lacks, so a patch "
            f"from `git diff {ref}` would fold those upstream changes in")
    if len(points) > 1:
        shown = ", ".join(_describe(config, fork, p)[0] for p in points)
        raise InputError(f"{lead}; it sits on several upstream lines at once ({shown}): rebase the fork onto "
                         "one upstream commit, then import it")
    shown, suggested = _describe(config, fork, points[0])
    if forkpoint.is_upstream_ancestor(checkout, fork, points[0], base):
        lead = (f"{fork}: the fork's HEAD is on upstream commits older than the base {base[:12]} ({ref}), so a "
                f"patch from `git diff {ref}` would revert the upstream changes in between")
    raise InputError(f"{lead}; its upstream base (merge-base with upstream) is {shown}: import against it with "
                     f"`--base {suggested}` or `--base {FORK_POINT}`, which also relock the series there")


def _fork_point(config: Config, fork: Path) -> tuple[CommitSha, str]:
    """`--base fork-point`: the fork's merge-base with upstream, and the ref to lock it as (tag, else SHA)."""
    if not config.upstream.checkout.exists():
        raise InputError(f"--base {FORK_POINT}: the upstream clone {config.upstream.checkout} does not exist, so "
                         "the fork's upstream base cannot be found; clone it there or pass --base REF")
    checkout = git.require_repo(config.upstream.checkout)
    points = forkpoint.upstream_points(checkout, fork, None)
    if len(points) != 1:
        why = ("shares no history with the upstream clone; pass --base REF naming its base" if not points else
               "sits on several upstream lines at once (" + ", ".join(_describe(config, fork, p)[0] for p in points)
               + "); rebase it onto one upstream commit, then import it")
        raise InputError(f"{fork}: --base {FORK_POINT}: the fork {why}")
    tag, _ = forkpoint.upstream_names(checkout, fork, points[0])
    return points[0], tag or points[0]


def refuse_outside(config: Config, source: str, patch: Patch) -> None:
    outside = outside_allowed(patch, config.series.allowed_paths)
    if outside:
        raise InputError(f"{source}: {len(outside)} path(s) outside [series].allowed_paths: {', '.join(outside)}; "
                         f"drop them from the patch or add their prefixes to allowed_paths in {config.path}")


def _target(config: Config, to: Path | None) -> Path:
    patches = config.series.patches
    if to is None:
        if len(patches) != 1:
            raise InputError(f"{config.path}: the series has {len(patches)} patches; name the one to write with "
                             "--to PATH")
        return patches[0]
    wanted = to.resolve()
    if wanted not in patches:
        raise InputError(f"{to}: not one of [series].patches in {config.path}; add it there first or pick one of "
                         f"them")
    return wanted




# ------------------------------------------------------------------------------------------ canonical form


def canonical_series(ws: Workspace, texts: dict[Path, bytes], base: CommitSha) -> dict[Path, bytes]:
    """Apply the series (with `texts` standing in for some of its files) at `base` in the shadow repository
    and write every patch back in canonical form. Raises SeriesInconsistentError when it does not apply."""
    config = ws.config
    shadow = ws.shadow
    with tempfile.TemporaryDirectory(prefix="mpspatch-import-") as tmp:
        files: list[Path] = []
        for number, path in enumerate(config.series.patches):
            if path in texts:
                stand_in = Path(tmp) / str(number) / path.name
                stand_in.parent.mkdir()
                stand_in.write_bytes(texts[path])
                files.append(stand_in)
            else:
                files.append(path)
        try:
            build = build_series(shadow, base, files)
        except SeriesInconsistentError as exc:
            # The message names the stand-in in the temporary folder: name the patch the user knows instead.
            real = dict(zip(files, config.series.patches, strict=True)).get(exc.patch, exc.patch)
            message = exc.message.replace(str(exc.patch), str(real))
            raise type(exc)(message, real, exc.files) from None
    parents = (base, *build.commits[:-1])
    return {
        path: git.patch_text(shadow, parent, commit).encode("utf-8")
        for path, parent, commit in zip(config.series.patches, parents, build.commits, strict=True)
    }


def _keep_previous(config: Config, path: Path) -> Path | None:
    if not path.exists():
        return None
    return keep_previous(config, path.name, path.read_bytes())


def _relock(config: Config, base: CommitSha, base_ref: str, command: str) -> None:
    write_lock(config.series.lock, make_lock(config, base, base_ref, parse_series(config.series.patches), command))


# ------------------------------------------------------------------------------------------------- import


def import_patch(ws: Workspace, source: str | None, to: Path | None = None, base_ref: str | None = None
                 ) -> ImportResult:
    config = ws.config
    ws.refuse_during_rebase("import")
    source = source or CANONICAL_URL
    target = _target(config, to)
    notes: list[str] = []
    fork_base: CommitSha | None = None
    fork_ref: str | None = None
    if base_ref == FORK_POINT and (is_url(source) or not Path(source).is_dir()):
        raise InputError(f"--base {FORK_POINT}: {source} is not a fork checkout; give the fork's folder, or pass "
                         "--base REF")
    if is_url(source):
        kind, data = ImportKind.URL, download(source)
    elif Path(source).is_dir():
        kind = ImportKind.FORK
        data, fork_base, fork_ref, notes = fork_diff(config, Path(source), base_ref)
        if not data.strip():
            raise InputError(f"{source}: the fork's working tree does not differ from its base {fork_base[:12]}; "
                             "nothing to import")
    else:
        kind = ImportKind.FILE
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise InputError(f"{source}: cannot read the patch ({exc.strerror}); give an existing file, a URL or "
                             "a fork checkout folder") from None
    require_utf8(Path(source), data)
    parsed = parse_patch_bytes(Path(source), data)
    refuse_outside(config, source, parsed)

    base: CommitSha | None = None
    ref = base_ref or config.upstream.base
    canonical = False
    if config.upstream.checkout.exists():
        if base_ref and base_ref != FORK_POINT:
            base = ws.resolve(base_ref)
        elif fork_base is not None and fork_ref is not None and git.has_commit(ws.checkout, fork_base):
            base, ref = fork_base, fork_ref
        else:
            base, ref = ws.base, ws.base_ref
        data = canonical_series(ws, {target: data}, base)[target]
        canonical = True
        if not parsed.has_index_lines:
            notes.append("the patch had no `index` lines; the rewritten one has full ones, so 3-way merges work")
    else:
        notes.append(f"{config.upstream.checkout} does not exist, so the patch was not applied at its base nor "
                     "rewritten in canonical form; run `mpspatch regenerate` once the clone is there")
    previous = _keep_previous(config, target)
    atomic_write_bytes(target, data)
    if base is not None:
        _relock(config, base, ref, "mpspatch import")
    else:
        notes.append("series.lock was not updated; run `mpspatch lock` once the clone is there")
    written = parse_patch_bytes(target, data)
    return ImportResult(source=source, kind=kind, patch=target, files=len(written.files),
                        insertions=written.insertions, deletions=written.deletions, canonical=canonical, base=base,
                        previous=previous, notes=tuple(notes))


# --------------------------------------------------------------------------------------------- regenerate


def _compare(path: Path, fresh: bytes) -> PatchSync:
    current = path.read_bytes() if path.exists() else b""
    if current == fresh:
        return PatchSync(path=path, in_sync=True, added=0, removed=0, diff="")
    lines = list(difflib.unified_diff(
        current.decode("utf-8", errors="replace").splitlines(keepends=True),
        fresh.decode("utf-8", errors="replace").splitlines(keepends=True),
        fromfile=f"{path.name} (on disk)", tofile=f"{path.name} (regenerated)", n=1))
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    shown = lines[:DIFF_SUMMARY_LINES]
    if len(lines) > DIFF_SUMMARY_LINES:
        shown.append(f"... {len(lines) - DIFF_SUMMARY_LINES} more diff lines\n")
    text = "".join(line if line.endswith("\n") else line + "\n" for line in shown)
    return PatchSync(path=path, in_sync=False, added=added, removed=removed, diff=text)


def regenerate(ws: Workspace, source: Path | None = None, *, check: bool = False, to: Path | None = None,
               base_ref: str | None = None) -> RegenerateResult:
    """Re-derive the patch files; with `check`, only compare (the caller exits 1 when out of sync)."""
    config = ws.config
    if not check:
        ws.refuse_during_rebase("regenerate")
    notes: list[str] = []
    if source is not None:
        if len(config.series.patches) != 1:
            raise InputError(f"{config.path}: regenerate --from needs a one-patch series (a fork holds the "
                             "cumulative change); split it afterwards with `mpspatch split`")
        target = _target(config, to)
        data, base, ref, notes = fork_diff(config, source, base_ref)
        parsed = parse_patch_bytes(target, data) if data.strip() else None
        if parsed is not None:
            refuse_outside(config, str(source), parsed)
        fresh = {target: data}
        label = f"fork {source}"
    else:
        if base_ref:
            base, ref = ws.resolve(base_ref), base_ref
        else:
            base, ref = ws.base, ws.base_ref
        originals = {p: p.read_bytes() for p in config.series.patches}
        for path, original in originals.items():
            require_utf8(path, original)
        fresh = canonical_series(ws, originals, base)
        label = "series at its base"
    synced = tuple(_compare(path, text) for path, text in fresh.items())
    written: list[Path] = []
    if not check:
        for item in synced:
            if not item.in_sync:
                _keep_previous(config, item.path)
                atomic_write_bytes(item.path, fresh[item.path])
                written.append(item.path)
        if written or source is not None:
            _relock(config, base, ref, "mpspatch regenerate")
    return RegenerateResult(source=label, check=check, base=base, patches=synced, written=tuple(written),
                            notes=tuple(notes))
