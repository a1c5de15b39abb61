"""`render-pr`, `render-issue`, `render-audit`: what was written, or with --check the diff to the fresh render."""

from __future__ import annotations

import sys
from dataclasses import dataclass

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


@dataclass(frozen=True)
class RenderJson:
    """`render-* --json`: what `gh` takes beside the body file. `labels` are applied by the submitter (or asked of
    @pytorchbot); `maintainer_labels` only a maintainer can apply."""

    kind: str
    title: str
    body_file: str  # holds the body only
    labels: tuple[str, ...]
    maintainer_labels: tuple[str, ...]
    reviewers: tuple[str, ...]
    cc: tuple[str, ...]
    status: str  # the readiness verdict: READY FOR SUBMISSION, or NOT READY — N gaps
    ready: bool
    gaps: int
    state: str  # written | up to date | stale | missing


def render_json(rendered: Rendered) -> RenderJson:
    doc = rendered.document
    assert doc is not None
    return RenderJson(kind=rendered.kind, title=doc.title, body_file=rendered.label, labels=doc.labels,
                      maintainer_labels=doc.maintainer_labels, reviewers=doc.reviewers, cc=doc.cc,
                      status=rendered.status_line, ready=rendered.ready, gaps=rendered.gaps,
                      state=str(rendered.state))
