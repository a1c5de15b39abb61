"""The views' shared core: JSON models become plain JSON values, and a --json run loads no display library."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pytest

from mpspatch.views.console import emit_json, plain


class Colour(StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Inner:
    path: Path
    colour: Colour


@dataclass(frozen=True)
class Outer:
    name: str
    items: tuple[Inner, ...]
    counts: Mapping[str, int]
    missing: int | None


def test_a_model_becomes_plain_values_in_field_order(capsys: pytest.CaptureFixture[str]) -> None:
    model = Outer(name="n", items=(Inner(Path("a/b"), Colour.RED),), counts={"passed": 2}, missing=None)
    assert plain(model) == {"name": "n", "items": [{"path": "a/b", "colour": "red"}], "counts": {"passed": 2},
                            "missing": None}
    emit_json(model)
    written = capsys.readouterr().out
    assert list(json.loads(written)) == ["name", "items", "counts", "missing"]
    assert written.endswith("}\n")


def test_a_value_without_a_json_form_is_refused() -> None:
    with pytest.raises(TypeError, match="object has no JSON form"):
        plain(object())


def test_stats_json_loads_neither_rich_nor_jinja(tmp_path: Path) -> None:
    patch = tmp_path / "one.patch"
    patch.write_text("diff --git a/x.txt b/x.txt\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\n")
    probe = ("import sys\nfrom mpspatch import cli\n"
             "try:\n    cli.main(['stats', '--json', sys.argv[1]])\n"
             "except SystemExit:\n    pass\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'jinja2'}), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(patch)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert json.loads(done.stdout)["files"] == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
