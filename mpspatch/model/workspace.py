"""Where the series stands: the one rule that turns a user's ref into a commit, the series base, and the
Workspace every command builds once and passes down.

The rule: a ref names a commit of the user's clone as REF, else as `refs/remotes/origin/REF` (where a plain
`git fetch` puts branches). Every ref a user gives (--onto, --base, [upstream].base and .target) goes
through it, so `lock --base`, `rebase --onto`, `drift --onto` and `status` accept the same names and fail
with the same words.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import GitError, StateError
from mpspatch.foundation.ids import CommitSha
from mpspatch.git import shadow as shadow_repo
from mpspatch.git import verbs as git
from mpspatch.model import native_functions
from mpspatch.model.series import read_lock
from mpspatch.model.state import RebaseState, read_state, state_path, stopped_summary


def try_resolve_ref(checkout: Path, ref: str) -> CommitSha | None:
    """The commit `ref` names in the clone by the workspace rule, or None."""
    for candidate in (ref, f"refs/remotes/origin/{ref}"):
        found = git.commit_of(checkout, candidate)
        if found is not None:
            return found
    return None


def resolve_ref(checkout: Path, ref: str) -> CommitSha:
    """The commit `ref` names in the clone by the workspace rule, or a GitError naming the fetch that brings it."""
    found = try_resolve_ref(checkout, ref)
    if found is None:
        raise GitError(f"{checkout}: the clone has no {ref!r}; bring it with `{fetch_hint(checkout, ref)}`")
    return found


def fetch_hint(checkout: Path, ref: str) -> str:
    if re.fullmatch(r"[0-9a-f]{7,40}", ref):
        return f"git -C {checkout} fetch origin {ref}"
    if re.match(r"v\d", ref):  # release tags: a bare `fetch origin v2.9.1` would land only in FETCH_HEAD
        return f"git -C {checkout} fetch origin tag {ref}"
    return f"git -C {checkout} fetch origin {ref}"


def resolve_base(config: Config, repo: Path) -> tuple[CommitSha, str]:
    """The series base in `repo` (the clone, or a fork): series.lock when written (it records the exact SHA),
    else [upstream].base."""
    lock = read_lock(config.series.lock)
    if lock is None:
        return resolve_ref(repo, config.upstream.base), config.upstream.base
    if not git.has_commit(repo, lock.base):
        raise GitError(f"{repo}: the clone lacks the locked base {lock.base} ({lock.base_ref}); bring it with "
                       f"`{fetch_hint(repo, lock.base_ref)}`")
    return lock.base, lock.base_ref


def merge_drivers(config: Config) -> tuple[shadow_repo.MergeDriverSpec, ...]:
    """The shadow's merge drivers, first match first: [rebase.merge_drivers] in order, then the built-in
    structured merge of native_functions.yaml (which a user pattern matching that file overrides)."""
    style = config.rebase.conflict_style
    users = tuple(shadow_repo.MergeDriverSpec(name=f"mpspatch-user-{index + 1}", pattern=d.pattern, command=d.command)
                  for index, d in enumerate(config.rebase.merge_drivers))
    builtin = shadow_repo.MergeDriverSpec(name=native_functions.DRIVER_NAME, pattern=native_functions.DRIVER_PATTERN,
                                          command=native_functions.driver_command(sys.executable, style.value))
    return (*users, builtin)


@dataclass(frozen=True)
class Span:
    """What a rebase or forecast moves: the series base and the commit it goes onto, with the refs named."""

    base: CommitSha
    base_ref: str
    onto: CommitSha
    onto_ref: str


class Workspace:
    """The config, the user's clone, the shadow repository, the series base and any stopped rebase.

    Built once per command. Each part is computed on first use and then kept, so a command pays only for
    what it reads: `status` never creates the shadow, `rebase --abort` works without the clone, and the
    base is resolved once however many layers ask for it. A command that moves the base (rebase, lock)
    leaves this workspace behind; the next command builds a new one.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._base: tuple[CommitSha, str] | None = None

    @cached_property
    def _clone_layout(self) -> tuple[Path, Path]:
        """The clone's top and common git directory: one `git rev-parse` serves `checkout` and `shadow`."""
        return shadow_repo.clone_layout(self.config.upstream.checkout)

    @cached_property
    def checkout(self) -> Path:
        """The top of the user's clone; a GitError naming [upstream].checkout when it is missing or no repo."""
        return self._clone_layout[0]

    @cached_property
    def shadow(self) -> Path:
        """The shadow repository, created on first use (it also checks the clone, like `checkout`)."""
        shadow = shadow_repo.ensure_shadow(self.config.upstream.checkout, self.config.state_dir, self._clone_layout)
        shadow_repo.configure_merges(shadow, self.config.rebase.conflict_style.value, merge_drivers(self.config))
        return shadow

    @property
    def shadow_path(self) -> Path:
        """Where the shadow lives, whether or not it exists (for cleanup that must not create it)."""
        return shadow_repo.shadow_path(self.config.state_dir)

    @cached_property
    def rebase(self) -> RebaseState | None:
        """The stopped or interrupted rebase, as `.mpspatch/rebase.json` recorded it when first asked."""
        return read_state(self.config)

    def refuse_during_rebase(self, command: str) -> None:
        """A StateError (exit 2) when a rebase is stopped: `command` reads or writes the series, which is then
        half-way between two bases, so it waits until the rebase is continued or aborted."""
        stopped = self.rebase
        if stopped is not None:
            raise StateError(f"{state_path(self.config)}: {stopped_summary(stopped)}; `mpspatch {command}` waits "
                             "for it: finish it with `mpspatch rebase --continue` or drop it with "
                             "`mpspatch rebase --abort`")

    @property
    def base(self) -> CommitSha:
        return self._resolved_base()[0]

    @property
    def base_ref(self) -> str:
        return self._resolved_base()[1]

    def _resolved_base(self) -> tuple[CommitSha, str]:
        if self._base is None:
            self._base = resolve_base(self.config, self.checkout)
        return self._base

    def resolve(self, ref: str) -> CommitSha:
        return resolve_ref(self.checkout, ref)

    def try_resolve(self, ref: str) -> CommitSha | None:
        return try_resolve_ref(self.checkout, ref)

    def resolve_onto(self, onto_ref: str | None = None) -> Span:
        """The base and `onto_ref` (default: [upstream].target). While the base is not known yet both come from
        one `git rev-parse`; a ref missing there takes the one-by-one path that names the fetch it needs."""
        onto_ref = onto_ref or self.config.upstream.target
        if self._base is None:
            lock = read_lock(self.config.series.lock)
            base_ref = lock.base_ref if lock else self.config.upstream.base
            both = git.commits_of(self.checkout, [lock.base if lock else base_ref, onto_ref])
            if both is not None:
                self._base = (both[0], base_ref)
                return Span(both[0], base_ref, both[1], onto_ref)
        return Span(self.base, self.base_ref, self.resolve(onto_ref), onto_ref)
