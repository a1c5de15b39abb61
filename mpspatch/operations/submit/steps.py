"""What both methods share: the parts to commit, which recorded part each continues, the runner of gh and
git push (or its --dry-run list), and what follows a PR (the "Changes since vN" comment, the labels)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.ids import CommitSha, TreeSha
from mpspatch.git import github as gh
from mpspatch.git import remote
from mpspatch.git import verbs as git
from mpspatch.model.submission import (
    LabelOutcome,
    LabelRecord,
    PartSubmission,
    Version,
)
from mpspatch.model.workspace import Workspace
from mpspatch.operations.submit.compare import changes_note
from mpspatch.operations.submit.results import Draft, PartResult, Step


@dataclass(frozen=True)
class Part:
    index: int
    title: str
    tree: TreeSha
    message: str  # the commit message with the fork method (the split part's, or the series title)


@dataclass(frozen=True)
class Plan:
    """Which recorded part each new part continues (its branch and PR), and what is left over."""

    matched: tuple[PartSubmission | None, ...]
    branches: tuple[str, ...]
    stale: tuple[PartSubmission, ...]


# ------------------------------------------------------------------------------------------- the runner


class Runner:
    """Runs gh and git push, or with dry_run only writes down what it would run."""

    def __init__(self, cwd: Path, dry_run: bool) -> None:
        self.cwd, self.dry_run = cwd, dry_run
        self.steps: list[Step] = []

    def gh(self, argv: Sequence[str], purpose: str, *, check: bool = True,
           query: bool = False) -> proc.Completed | None:
        """Run gh; None with --dry-run (queries still run: they change nothing and make the plan exact)."""
        if self.dry_run and not query:
            self.steps.append(Step(proc.describe(argv), purpose, ""))
            return None
        result = gh.run(argv, self.cwd, check=check)
        outcome = "ok" if result.ok else f"refused (exit {result.returncode})"
        self.steps.append(Step(proc.describe(argv), purpose, outcome))
        return result

    def push(self, repo: Path, fork: str, updates: Sequence[remote.RefUpdate]) -> None:
        argv = remote.push_argv(fork, updates)
        if not self.dry_run:
            remote.push(repo, fork, updates)
        self.steps.append(Step(proc.describe(argv), "push the branches from the shadow repository",
                               "" if self.dry_run else "ok"))


# ----------------------------------------------------------------------------- after a PR, with either method


def follow_up(ws: Workspace, run: Runner, body_dir: Path, number: int | None, index: int, doc: Draft,
               recorded: PartSubmission | None, *, since: Version | None, tip: CommitSha) -> tuple[LabelRecord, ...]:
    """What follows opening or updating part `index`'s PR, whichever method did it: on an update that makes a
    new version (`since`), the "Changes since vN" comment with the range-diff of this PR's commits (the old
    version up to `recorded`, the part this one continues, against the new one up to `tip`); then the labels
    not applied or requested on this PR before."""
    repo = ws.config.submit.repo
    if since is not None and number is not None:
        note_file = body_dir / f"changes.part-{index:02d}.md"
        # This PR's commits then and now: the old version up to the part this one continues.
        old_tip = next((p.commit for p in since.parts if recorded is not None and p.index == recorded.index),
                       since.tip)
        if not run.dry_run:
            atomic_write_text(note_file, changes_note(ws.shadow, since, ws.base, tip, old_tip))
        run.gh(gh.comment_argv(repo, number, note_file),
               f"tell the reviewers of PR #{number} what changed since {since.name}")
    done = recorded.labels if recorded is not None and recorded.pr == number else ()
    return apply_labels(run, repo, number, doc.labels, done, index)


def label_notes(results: Sequence[PartResult], notes: list[str]) -> None:
    requested = sorted({label.name for r in results for label in r.labels if label.outcome == LabelOutcome.REQUESTED})
    if requested:
        notes.append("no permission to label here: asked @pytorchbot for " + ", ".join(f'"{n}"' for n in requested)
                     + "; the bot applies them, check the PRs")


def apply_labels(run: Runner, repo: str, number: int | None, wanted: Sequence[str], done: Sequence[LabelRecord],
            index: int) -> tuple[LabelRecord, ...]:
    """Apply each label not applied or requested before; where gh refuses, ask @pytorchbot instead."""
    outcomes = list(done)
    known = {label.name for label in done}
    ref: int | str = number if number is not None else f"<PR of part {index}>"
    for label in wanted:
        if label in known:
            continue
        tried = run.gh(gh.add_label_argv(repo, ref, label), f"label PR {ref} {label!r}", check=False)
        if tried is None:  # dry run: say both, since only GitHub knows whether the label will be refused
            run.steps.append(Step(proc.describe(gh.bot_label_argv(repo, ref, label)),
                                  "only if the label is refused (no triage permission)", ""))
            continue
        if tried.ok:
            outcomes.append(LabelRecord(label, LabelOutcome.APPLIED))
            continue
        run.gh(gh.bot_label_argv(repo, ref, label), f"ask @pytorchbot to label PR #{ref} {label!r}")
        outcomes.append(LabelRecord(label, LabelOutcome.REQUESTED))
    return tuple(outcomes)


def make_commits(ws: Workspace, base: CommitSha, messages: Sequence[str],
             trees: Sequence[TreeSha]) -> tuple[CommitSha, ...]:
    identity = remote.user_identity(ws.checkout)
    if identity is None:
        raise GitError(f"{ws.checkout}: git has no user.name/user.email there; set them (the pushed commits carry "
                       "them, and the CLA check reads the author)")
    stamp = f"@{git.commit_time(ws.shadow, base)} +0000"
    env = {**git.isolated_config_env(), **git.identity_env(identity[0], identity[1], stamp), "TZ": "UTC"}
    made: list[CommitSha] = []
    parent: str = base
    for tree, message in zip(trees, messages, strict=True):
        parent = git.commit_tree_as(ws.shadow, tree, parent, message, env)
        made.append(CommitSha(parent))
    return tuple(made)
