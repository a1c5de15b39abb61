"""What `submit` sent to GitHub: the issue, each PR, the pushed SHAs, as numbered versions of the series.

Each time `submit` pushes different commits (or the base moved), a new version is recorded (v1, v2, ...,
like b4's `sent/` tags): its base, the series sha256 the commits were made from, and per part the branch,
the pushed SHA, the PR and its body. `status` shows the latest; `submit --compare vN` diffs against one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.config import Config, SubmitMethod
from mpspatch.foundation.errors import InputError
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.store import StateFile

SUBMISSION_NAME = "submission.json"


class LabelOutcome(StrEnum):
    APPLIED = "applied"  # gh pr edit --add-label succeeded
    REQUESTED = "requested"  # refused, so `@pytorchbot label "L"` was posted: the bot applies it, not us


@dataclass(frozen=True)
class LabelRecord:
    name: str
    outcome: LabelOutcome


@dataclass(frozen=True)
class PartSubmission:
    index: int  # 1-based place in the stack
    title: str
    branch: str  # on the fork, without refs/heads/
    commit: CommitSha  # what was pushed
    pr: int | None  # None with the ghstack method, which opens its own PRs
    url: str
    body: str
    labels: tuple[LabelRecord, ...] = ()


@dataclass(frozen=True)
class Version:
    number: int  # 1, 2, ...
    base: CommitSha
    base_ref: str
    series_sha256: str
    method: SubmitMethod
    draft: bool
    parts: tuple[PartSubmission, ...]
    # Parts of the version before whose PR the merge bot landed upstream: dropped from the stack by this one.
    landed: tuple[PartSubmission, ...] = ()
    # Branches and PRs of earlier parts that no longer exist in the stack; reported, never deleted.
    stale: tuple[PartSubmission, ...] = ()

    @property
    def name(self) -> str:
        return f"v{self.number}"

    @property
    def tip(self) -> CommitSha:
        return self.parts[-1].commit


@dataclass(frozen=True)
class Submission:
    repo: str
    fork: str
    owner: str
    issue: int | None
    issue_url: str
    versions: tuple[Version, ...]

    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    @property
    def landed(self) -> tuple[PartSubmission, ...]:
        """Every part that landed upstream, over all versions, in the order they were found."""
        return tuple(p for v in self.versions for p in v.landed)

    def version(self, name: str) -> Version:
        """Version `name` ("v2" or "2"); an InputError naming the recorded ones otherwise."""
        wanted = name.lower().removeprefix("v")
        found = next((v for v in self.versions if str(v.number) == wanted), None)
        if found is None:
            known = ", ".join(v.name for v in self.versions) or "none yet"
            raise InputError(f"--compare {name}: no such submitted version; recorded: {known}")
        return found


SUBMISSION = StateFile(
    what="the submission record", model=Submission, version=1,
    fix="repair it from the PRs on GitHub, or delete it (the next `mpspatch submit` finds the open PRs again)",
)


def submission_path(config: Config) -> Path:
    return config.state_dir / SUBMISSION_NAME


def read_submission(config: Config) -> Submission | None:
    return SUBMISSION.read(submission_path(config))


def write_submission(config: Config, submission: Submission) -> None:
    SUBMISSION.write(submission_path(config), submission)
