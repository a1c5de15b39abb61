"""The parts of the documents only a person can write: docs/prose/<name>.md under [render].prose."""

from __future__ import annotations

from dataclasses import dataclass

from mpspatch.foundation.config import Config
from mpspatch.reporting.text import relative

PROSE = ("summary", "motivation", "alternatives", "limitations")


@dataclass(frozen=True)
class ProseFragment:
    name: str
    path: str  # relative to the config folder
    text: str | None  # None when the file is missing or blank

    @property
    def present(self) -> bool:
        return self.text is not None


def read_prose(config: Config) -> tuple[ProseFragment, ...]:
    folder = config.render.prose_dir
    fragments = []
    for name in PROSE:
        if folder is None:
            fragments.append(ProseFragment(name, f"(no [render].prose folder)/{name}.md", None))
            continue
        path = folder / f"{name}.md"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = ""
        fragments.append(ProseFragment(name, relative(path, config.root), text or None))
    return tuple(fragments)

