"""The `gh` CLI as an external program, run through proc like git: the few calls `submit` makes, typed.

Only `gh issue create`, `gh pr create`, `gh pr edit`, `gh pr comment` and `gh pr list --json` are used, so what
mpspatch does on GitHub is easy to read and to test. `gh` owns authentication; mpspatch never sees a token.
Every call is described by its argv first (`*_argv`), so `submit --dry-run` can print exactly what would run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.errors import CommandFailedError, InputError, ToolMissingError

INSTALL_HINT = "install the GitHub CLI (https://cli.github.com, e.g. `brew install gh` or `apt install gh`) and run " \
               "`gh auth login`"
_NUMBER_URL = re.compile(r"https?://\S+/(?:issues|pull)/(\d+)\s*$")


class GhError(InputError):
    """gh refused a call: not logged in, no access to the repository, a name that does not exist. The user's
    to fix (exit 2); the message quotes gh's own words."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    head: str  # the branch name, without owner
    owner: str  # the head repository's owner
    state: str  # OPEN | CLOSED | MERGED


def require_gh() -> str:
    """The gh program's path; a ToolMissingError naming how to install it when there is none."""
    found = proc.which("gh")
    if found is None:
        raise ToolMissingError(f"gh: not found on PATH; {INSTALL_HINT}")
    return found


def run(argv: Sequence[str], cwd: Path, *, check: bool = True) -> proc.Completed:
    """Run one gh command (argv starts with "gh"); with check, a refusal is a GhError quoting gh."""
    try:
        result = proc.run(list(argv), cwd=cwd, check=False, timeout=300)
    except ToolMissingError:
        raise ToolMissingError(f"gh: not found on PATH; {INSTALL_HINT}") from None
    except CommandFailedError as exc:
        raise GhError(f"gh: {exc.message}") from None
    if check and not result.ok:
        said = proc.tail(result.stderr or result.stdout, 3).replace("\n", " ").strip() or "no output"
        raise GhError(f"`{proc.describe(argv)}` failed (exit {result.returncode}): {said}")
    return result


def number_from_url(stdout: str, what: str) -> tuple[int, str]:
    """The number and URL `gh issue create` / `gh pr create` print as their last line."""
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    match = _NUMBER_URL.search(lines[-1]) if lines else None
    if match is None:
        raise GhError(f"gh did not print the new {what}'s URL (it printed {stdout.strip()[:120]!r})")
    return int(match.group(1)), lines[-1]


def issue_create_argv(repo: str, title: str, body_file: Path) -> list[str]:
    return ["gh", "issue", "create", "--repo", repo, "--title", title, "--body-file", str(body_file)]


def pr_create_argv(repo: str, base: str, head: str, title: str, body_file: Path, *, draft: bool) -> list[str]:
    argv = ["gh", "pr", "create", "--repo", repo, "--base", base, "--head", head, "--title", title,
            "--body-file", str(body_file)]
    return [*argv, "--draft"] if draft else argv


def pr_edit_argv(repo: str, number: int | str, title: str, body_file: Path) -> list[str]:
    return ["gh", "pr", "edit", str(number), "--repo", repo, "--title", title, "--body-file", str(body_file)]


def add_label_argv(repo: str, number: int | str, label: str) -> list[str]:
    return ["gh", "pr", "edit", str(number), "--repo", repo, "--add-label", label]


def bot_label_argv(repo: str, number: int | str, label: str) -> list[str]:
    return ["gh", "pr", "comment", str(number), "--repo", repo, "--body", f'@pytorchbot label "{label}"']


def comment_argv(repo: str, number: int | str, body_file: Path) -> list[str]:
    return ["gh", "pr", "comment", str(number), "--repo", repo, "--body-file", str(body_file)]


def pr_list_argv(repo: str, branch: str) -> list[str]:
    return ["gh", "pr", "list", "--repo", repo, "--head", branch, "--state", "all",
            "--json", "number,url,headRefName,headRepositoryOwner,state"]


def parse_pr_list(stdout: str) -> tuple[PullRequest, ...]:
    try:
        rows = json.loads(stdout or "[]")
    except ValueError:
        raise GhError(f"`gh pr list --json` did not print JSON (it printed {stdout.strip()[:120]!r})") from None
    found = []
    for row in rows if isinstance(rows, list) else []:
        owner = row.get("headRepositoryOwner") or {}
        found.append(PullRequest(number=int(row["number"]), url=str(row["url"]), head=str(row["headRefName"]),
                                 owner=str(owner.get("login", "")), state=str(row.get("state", "OPEN"))))
    return tuple(found)
