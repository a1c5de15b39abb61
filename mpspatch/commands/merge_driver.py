"""The merge driver git runs in the shadow repository for native_functions.yaml.

git calls `PYTHON -P -m mpspatch.commands.merge_driver --style STYLE %O %A %B %L %P` (see
model/native_functions.driver_command) when both sides changed the file: %A holds ours and receives the
result, %O the merge base, %B theirs, %L the conflict marker size, %P the path. The exit status tells git
whether the merge is clean (0) or left conflict markers (1). A file the structured merge cannot read is
merged by lines, with `git merge-file` in the same style, so git's own result is the fallback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mpspatch.model import native_functions

USAGE = "usage: python -m mpspatch.commands.merge_driver [--style merge|diff3|zdiff3] BASE OURS THEIRS [SIZE [PATH]]"


def merge_files(base: Path, ours: Path, theirs: Path, style: str, marker_size: int) -> bool:
    """Merge into `ours`; True when clean."""
    try:
        texts = [p.read_bytes().decode("utf-8") for p in (base, ours, theirs)]
        result = native_functions.merge_text(texts[0], texts[1], texts[2], style, marker_size)
    except (native_functions.Unstructured, UnicodeDecodeError):
        from mpspatch.git import objects  # only here: git merge-file, the line merge (its import costs start-up)

        return objects.merge_file(Path.cwd(), ours, base, theirs, style=style, marker_size=marker_size)
    ours.write_bytes(result.text.encode("utf-8"))
    return result.clean


def main(argv: list[str] | None = None) -> int:
    """0: merged cleanly; 1: conflicts left in OURS; 2: bad arguments (git counts that as a conflict too)."""
    args = list(sys.argv[1:] if argv is None else argv)
    style = native_functions.MERGE
    if args[:1] == ["--style"] and len(args) > 1:
        style = args[1]
        args = args[2:]
    if style not in native_functions.STYLES or not 3 <= len(args) <= 5 or (len(args) > 3 and not args[3].isdigit()):
        sys.stderr.write(USAGE + "\n")
        return 2
    marker_size = int(args[3]) if len(args) > 3 else 7
    return 0 if merge_files(Path(args[0]), Path(args[1]), Path(args[2]), style, marker_size) else 1


if __name__ == "__main__":
    sys.exit(main())
