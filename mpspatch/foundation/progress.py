"""Step callbacks for the long operations (rebase, drift, split).

An operation calls `steps.step("building the series")` at a few boundaries; the edge passes a subclass that
draws a spinner on a terminal. The default does nothing, so the core never imports rich and a test can pass
a recorder.
"""

from __future__ import annotations


class Steps:
    """Told which step an operation has reached. The default does nothing."""

    def step(self, text: str) -> None:
        """The operation has started `text` (a lower-case phrase such as "forecasting the merge")."""


QUIET = Steps()
