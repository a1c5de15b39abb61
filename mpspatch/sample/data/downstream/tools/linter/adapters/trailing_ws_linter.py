"""lintrunner adapter that reports spaces and tabs at the end of lines.

lintrunner runs it as `python3 trailing_ws_linter.py -- @PATHSFILE`, where PATHSFILE lists the
files to check, one per line. It prints one JSON LintMessage per line on stdout: one message per
offending line, and the last message for a file carries the whole file before and after the fix
in `original` and `replacement`, so `lintrunner -a` can apply it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LINTER_CODE = "TRAILINGWS"


def message(
    path: str,
    line: int | None,
    char: int | None,
    severity: str,
    name: str,
    description: str,
    original: str | None = None,
    replacement: str | None = None,
) -> str:
    return json.dumps(
        {
            "path": path,
            "line": line,
            "char": char,
            "code": LINTER_CODE,
            "severity": severity,
            "name": name,
            "original": original,
            "replacement": replacement,
            "description": description,
        }
    )


def strip_line(line: str) -> str:
    """Drops spaces and tabs before the line ending, keeping the ending itself."""
    body = line.rstrip("\r\n")
    return body.rstrip(" \t") + line[len(body) :]


def check(path: str) -> list[str]:
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return []  # not text: nothing to say about its line endings
    except OSError as error:
        return [message(path, None, None, "error", "read-failed", f"cannot read: {error}")]
    lines = text.splitlines(keepends=True)
    fixed = [strip_line(line) for line in lines]
    found: list[str] = []
    for number, (line, clean) in enumerate(zip(lines, fixed, strict=True), start=1):
        if line != clean:
            found.append(
                message(
                    path,
                    number,
                    len(clean.rstrip("\r\n")) + 1,
                    "warning",
                    "trailing-whitespace",
                    "Trailing spaces or tabs; run `lintrunner -a` to remove them.",
                )
            )
    if found:
        # Only the last message carries the whole-file fix, so `lintrunner -a` applies it once.
        last = json.loads(found[-1])
        last["original"] = text
        last["replacement"] = "".join(fixed)
        found[-1] = json.dumps(last)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, fromfile_prefix_chars="@")
    parser.add_argument("paths", nargs="*", help="files to check")
    args = parser.parse_args(argv)
    for path in args.paths:
        for line in check(path):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
