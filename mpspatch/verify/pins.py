"""The clang-format PyTorch pins, and whether the one a stage ran is that version.

PyTorch's lintrunner downloads its own clang-format binary; `tools/linter/adapters/s3_init_config.json` in the
checkout names it, with the version in each download URL (`.../linux64/19.1.4/clang-format`). The PyPI wheel
mpspatch runs is often newer, and a newer clang-format can format differently. So a stage that runs
clang-format records the pin beside the version it used; a mismatch, or a pin that cannot be read, is a note
the status and the audit show, never a silent pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mpspatch.foundation import proc
from mpspatch.foundation.errors import CommandFailedError, ToolMissingError

S3_INIT_CONFIG = "tools/linter/adapters/s3_init_config.json"
_URL_VERSION = re.compile(r"/(\d+(?:\.\d+)+)/clang-format(?:\.exe)?$")
_TOOL_VERSION = re.compile(r"clang-format version (\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class ToolPin:
    tool: str  # "clang-format"
    pinned: str | None  # the version the checkout pins; None when its config names none that can be read
    in_use: str | None  # the version of the program the stage ran; None when it could not be asked
    source: str  # where the pin was read, relative to the tree

    @property
    def matches(self) -> bool:
        return self.pinned is not None and self.pinned == self.in_use

    def note(self) -> str:
        """One line for the evidence, the status and the audit."""
        if self.pinned is None:
            return (f"{self.tool} {self.in_use or '(version unknown)'} in use; {self.source} names no "
                    f"{self.tool} version that can be read, so the match with PyTorch's is not known")
        if self.matches:
            return f"{self.tool} {self.in_use} in use, the version {self.source} pins"
        return (f"{self.tool} {self.in_use or '(version unknown)'} in use, but {self.source} pins {self.pinned}: "
                f"findings can differ from PyTorch's CLANGFORMAT; install the pinned wheel "
                f"(`pip install clang-format=={self.pinned}`)")


def pinned_clang_format(config_text: str) -> str | None:
    """The clang-format version the checkout's s3_init_config.json pins, or None when it names none.

    Every platform entry normally names the same version; when they differ, the Linux one is taken (that is
    what the wheel is compared with most often, and it is what upstream's lint CI runs).
    """
    try:
        data = json.loads(config_text)
    except ValueError:
        return None
    entries = data.get("clang-format") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return None
    found: dict[str, str] = {}
    for platform, entry in entries.items():
        url = entry.get("download_url") if isinstance(entry, dict) else None
        match = _URL_VERSION.search(url) if isinstance(url, str) else None
        if match:
            found[str(platform)] = match.group(1)
    return found.get("Linux") or next(iter(found.values()), None)


def runs_clang_format(argv: tuple[str, ...]) -> bool:
    return bool(argv) and PurePosixPath(argv[0]).name.startswith("clang-format")


def clang_format_pin(repo: Path, tree: str, cwd: Path, program: str) -> ToolPin | None:
    """The pin record for a stage that ran `program` (a clang-format) on `tree` (read from the repository, so
    a sparse checkout without tools/ still has it), or None when the tree has no pin file."""
    from mpspatch.git.objects import read_blobs

    (blob,) = read_blobs(repo, [f"{tree}:{S3_INIT_CONFIG}"])
    if blob is None:
        return None
    in_use = None
    try:
        done = proc.run([program, "--version"], cwd=cwd, timeout=30, check=False)
        match = _TOOL_VERSION.search(done.stdout + done.stderr)
        in_use = match.group(1) if match else None
    except (proc.CommandTimeoutError, ToolMissingError, CommandFailedError):
        pass
    return ToolPin("clang-format", pinned_clang_format(blob.decode("utf-8", "replace")), in_use, S3_INIT_CONFIG)
