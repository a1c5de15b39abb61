"""`render-pr`, `render-issue`, `render-audit`: what was written, or with --check the diff to the fresh render."""

from __future__ import annotations

import sys

from mpspatch.commands.render import Rendered, RenderState
from mpspatch.views.console import note


def show_render(rendered: Rendered) -> None:
    label = rendered.label
    if rendered.state == RenderState.UP_TO_DATE:
        note(f"{label} is up to date")
    elif rendered.state == RenderState.WRITTEN:
        note(f"wrote {label} ({rendered.status_line})")
    else:
        show_diff(rendered.diff)
        what = "does not exist" if rendered.state == RenderState.MISSING else "is stale"
        note(f"{label} {what}; run `mpspatch render-{rendered.kind}` to rewrite it")


def show_diff(diff: str) -> None:
    """A unified diff on stdout, byte for byte: rich would re-wrap it and read [brackets] as markup."""
    sys.stdout.write(diff)
    sys.stdout.flush()
