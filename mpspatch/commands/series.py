"""`stats` and `lock`: the series' statistics, and recording its base and patch hashes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import ConfigError
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.series import SeriesStats, compute_stats, parse_series


def stats(patches: Sequence[Path], load: Callable[[], Config]) -> SeriesStats:
    """The configured series' statistics, or those of `patches`, which need no config (nor categories)."""
    try:
        config = load()
        categories, allowed = config.categories, config.series.allowed_paths
        paths = tuple(patches) if patches else config.series.patches
    except ConfigError:
        if not patches:
            raise
        categories, allowed, paths = (), (), tuple(patches)
    return compute_stats(parse_series(paths), categories, allowed)


@dataclass(frozen=True)
class LockWritten:
    lock: Path
    base: CommitSha
    base_ref: str
    patches: tuple[str, ...]  # as the lock records them: relative to the config folder


def lock(config: Config, base_ref: str | None = None, *, written_by: str = "mpspatch lock") -> LockWritten:
    """Write the lock for the current series at `base_ref`, resolved in the clone; without it, at the base the
    lock already records (a rebase moved it there), or [upstream].base when there is no lock yet."""
    from mpspatch.foundation.project_lock import project_lock
    from mpspatch.model.series import make_lock, write_lock
    from mpspatch.model.workspace import Workspace

    with project_lock(config.state_dir, "lock"):
        ws = Workspace(config)
        ws.refuse_during_rebase("lock")
        if base_ref is None:
            sha, ref = ws.base, ws.base_ref
        else:
            ref, sha = base_ref, ws.resolve(base_ref)
        written = make_lock(config, sha, ref, parse_series(config.series.patches), written_by)
        write_lock(config.series.lock, written)
    return LockWritten(lock=config.series.lock, base=sha, base_ref=ref, patches=tuple(p.path for p in written.patches))
