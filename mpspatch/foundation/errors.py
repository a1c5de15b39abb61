"""Domain errors. Core code raises these; only the CLI turns them into exit codes and messages."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    PROBLEM = 1  # the work found a problem: conflicts, failing stages, stale documents
    USAGE = 2  # bad input or usage
    INTERNAL = 3
    INTERRUPTED = 130


class MpspatchError(Exception):
    """Base of every error mpspatch reports on purpose. The message is one line a user can act on."""

    exit_code: ExitCode = ExitCode.INTERNAL
    detail: str = ""  # more than the one line, shown with --debug: a command's output, say

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(MpspatchError):
    """Bad input: a malformed file, an unknown ref, a path outside the allowed prefixes..."""

    exit_code = ExitCode.USAGE


class ConfigError(InputError):
    """The config file is missing, unreadable or does not match the schema."""


class PatchFormatError(InputError):
    """A patch file cannot be parsed."""


class ToolMissingError(InputError):
    """An external program mpspatch needs is not installed."""


class GitError(InputError):
    """A git operation failed for a reason the user can fix (unknown ref, dirty tree, missing clone).

    Raised explicitly where mpspatch knows what the user's input has to do with the failure; a git command that
    simply fails is a GitCommandError instead.
    """


class StateError(InputError):
    """Persistent state (lock, rebase in progress, evidence) is inconsistent with the request."""


class CommandFailedError(MpspatchError):
    """A subprocess failed where mpspatch did not expect it to. Carries the command and its output tail."""

    exit_code = ExitCode.INTERNAL


class GitCommandError(CommandFailedError):
    """One of mpspatch's own git commands failed unexpectedly: mpspatch built a command git refused, or the
    repository is broken. Not the user's input, so exit 3; the message names the command, `detail` holds
    git's output for --debug."""

    def __init__(self, message: str, *, argv: tuple[str, ...], cwd: str, returncode: int, output: str) -> None:
        super().__init__(message)
        self.argv = argv
        self.cwd = cwd
        self.returncode = returncode
        self.detail = output


class ProblemFound(MpspatchError):
    """The requested work ran and found a problem (stale document, conflict...)."""

    exit_code = ExitCode.PROBLEM
