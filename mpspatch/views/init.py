"""`init`: the files written and the next steps, and the JSON model of the contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpspatch.views.console import escape, out

if TYPE_CHECKING:
    from mpspatch.commands.init import InitResult


@dataclass(frozen=True)
class InitJson:
    directory: str
    written: tuple[str, ...]
    checkout: str
    base: str
    base_from: str
    patches: tuple[str, ...]
    allowed_paths: tuple[str, ...]


def init_json(result: InitResult) -> InitJson:
    return InitJson(directory=str(result.directory), written=result.written, checkout=result.checkout,
                    base=result.base, base_from=result.base_from, patches=result.patches,
                    allowed_paths=result.allowed_paths)


def next_steps(result: InitResult) -> tuple[str, ...]:
    steps = []
    if result.base_from == "default":
        steps.append(f"set [upstream].base in mpspatch.toml (now {result.base!r}) to the ref the patch applies to")
    steps.append(f"clone PyTorch at {result.checkout} if it is not there "
                 "(git clone https://github.com/pytorch/pytorch.git)")
    if result.base_from == "default" and len(result.patches) == 1 and result.patches[0].startswith("patches/"):
        steps.append("mpspatch import PATCH-OR-FORK   # bring the patch in")
    steps += ["mpspatch lock", "write docs/prose/*.md (each holds one line of guidance until you do)",
              "mpspatch status                  # every checklist row, and what is missing"]
    return tuple(steps)


def show_init(result: InitResult) -> None:
    console = out()
    console.print(f"Wrote a starter project in {escape(str(result.directory))}:")
    for rel in result.written:
        console.print(f"  {escape(rel)}")
    console.print(f"base {escape(result.base)} ({result.base_from}), checkout {escape(result.checkout)}, "
                  f"{len(result.allowed_paths):,} allowed path(s)")
    console.print("Next:")
    for step in next_steps(result):
        console.print(f"  {escape(step)}")
