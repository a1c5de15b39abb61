"""The package's layers, as folders. Each layer may import only the layers below it, and itself.

Operations never import each other (each command's work stands alone; what two of them share lives in a
lower layer). Only the edge imports typer or rich. A module outside every layer fails the test, so the
design stays written down rather than implied.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mpspatch"

# Bottom to top. A layer is a folder of the package (or, for the edge, a folder or a top-level module).
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("foundation", frozenset({"foundation"})),
    ("git", frozenset({"git"})),
    ("model", frozenset({"model"})),
    ("operations", frozenset({"operations"})),
    ("verify", frozenset({"verify"})),
    ("reporting", frozenset({"reporting"})),
    ("sample", frozenset({"sample"})),
    ("edge", frozenset({"commands", "views", "cli"})),
)
# Layers whose modules may not import a sibling module of the same layer.
ISOLATED = frozenset({"operations"})
EDGE = "edge"
UI_LIBRARIES = frozenset({"typer", "rich", "click"})


def unit_of(path: Path) -> str:
    """The folder (or top-level module) a source file belongs to: `operations`, `cli`, ..."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def layer_of(unit: str) -> str | None:
    return next((name for name, units in LAYERS if unit in units), None)


def rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = ".".join(("mpspatch", *path.relative_to(PACKAGE).parent.parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative import: resolve against the importing file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def sources() -> list[Path]:
    # The package's own __init__ holds only the version; sample/data holds the sample's files, not ours.
    data = PACKAGE / "sample" / "data"
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p != PACKAGE / "__init__.py" and data not in p.parents]


def problems_of(path: Path, imported: set[str]) -> list[str]:
    """Why each of `imported` is not allowed from `path`; empty when all are."""
    own_unit = unit_of(path)
    own_layer = layer_of(own_unit)
    if own_layer is None:
        return [f"{path.relative_to(PACKAGE)}: {own_unit!r} is in no layer; add it to LAYERS in {Path(__file__).name}"]
    problems = []
    own_module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:2])  # a package is one unit
    for name in sorted(imported):
        if name.split(".")[0] in UI_LIBRARIES and own_layer != EDGE:
            problems.append(f"{path.relative_to(PACKAGE)} imports {name}: only the edge may use typer or rich")
        parts = name.split(".")
        if parts[0] != "mpspatch" or len(parts) < 2:
            continue
        target_layer = layer_of(parts[1])
        if target_layer is None:  # a name imported from the package's face, e.g. __version__
            continue
        if rank(target_layer) > rank(own_layer):
            problems.append(f"{path.relative_to(PACKAGE)} ({own_layer}) imports {name} ({target_layer}), a layer above")
        elif own_layer in ISOLATED and target_layer == own_layer and len(parts) > 2:
            target_module = ".".join(parts[1:3])
            if target_module != own_module:
                problems.append(f"{path.relative_to(PACKAGE)} imports mpspatch.{target_module}: operations never "
                                "import each other")
    return sorted(set(problems))


def test_every_module_has_a_place_and_imports_only_downward() -> None:
    problems = [p for path in sources() for p in problems_of(path, imports_of(path))]
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_the_checker_rejects_bad_imports(tmp_path: Path) -> None:
    """The self-check writes real files into a copy of the layout, so the rules above are shown to bite."""
    global PACKAGE
    saved = PACKAGE
    PACKAGE = tmp_path / "mpspatch"
    try:
        (PACKAGE / "model").mkdir(parents=True)
        (PACKAGE / "operations").mkdir()
        upward = PACKAGE / "model" / "series.py"
        upward.write_text("from mpspatch.reporting.render import x\nimport rich.table\n")
        assert {"mpspatch.reporting.render", "rich.table"} <= imports_of(upward)
        found = problems_of(upward, imports_of(upward))
        assert any("a layer above" in p for p in found), found
        assert any("only the edge" in p for p in found), found

        sideways = PACKAGE / "operations" / "drift.py"
        sideways.write_text("from mpspatch.operations.rebase import start\n")
        assert any("never import each other" in p for p in problems_of(sideways, imports_of(sideways)))
        relative = PACKAGE / "operations" / "split.py"
        relative.write_text("from . import rebase\nfrom .drift import x\n")
        assert len([p for p in problems_of(relative, imports_of(relative)) if "never import" in p]) == 2

        downward = PACKAGE / "operations" / "ok.py"
        downward.write_text("from mpspatch.model.series import Patch\nfrom mpspatch.foundation import proc\n")
        assert problems_of(downward, imports_of(downward)) == []

        stray = PACKAGE / "stray.py"
        stray.write_text("")
        assert any("in no layer" in p for p in problems_of(stray, set()))
    finally:
        PACKAGE = saved
