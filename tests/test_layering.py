"""Data flows one way. A module may import only modules to its left, plus the shared bottom modules.

Adding a module means placing it in LAYERS; this test fails for a module it does not know, so the
design stays written down rather than implied.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mpspatch"

SHARED = {"errors", "proc", "ids", "files"}
# Left to right, the direction data flows: config -> series -> git work -> runner -> evidence -> render.
LAYERS = [
    "config",
    "series",
    "git",
    "history",
    "rebase",
    "regenerate",
    "drift",
    "split",
    "patched_tree",
    "stages",
    "runner",
    "evidence",
    "requirements",
    "status",
    "render",
    "sample",
    "demo",
    "console",
    "cli",
]
EDGE = {"cli", "console"}  # the only modules allowed to import typer or rich


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "mpspatch":
                found.update(f"mpspatch.{alias.name}" for alias in node.names)
    return found


def sources() -> list[Path]:
    # The package's own __init__ holds only the version; demo_sample holds the sample's files, not ours.
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p != PACKAGE / "__init__.py" and "demo_sample" not in p.parts]


def test_every_module_has_a_place() -> None:
    for path in sources():
        name = module_name(path)
        assert name in SHARED or name in LAYERS, f"{path.name}: add {name!r} to LAYERS in {__file__}"


def test_imports_point_left() -> None:
    problems = []
    for path in sources():
        own = module_name(path)
        allowed = SHARED - {own} if own in SHARED else SHARED | set(LAYERS[: LAYERS.index(own)]) | {own}
        for imported in imports_of(path):
            if imported.startswith("mpspatch."):
                target = imported.split(".")[1]
                if target not in allowed and not (own in EDGE and target in EDGE):
                    problems.append(f"{path.relative_to(PACKAGE)} imports mpspatch.{target}")
    assert not problems, "imports against the data flow:\n" + "\n".join(problems)


def test_only_the_edge_imports_typer_or_rich() -> None:
    problems = [
        f"{path.relative_to(PACKAGE)} imports {imported}"
        for path in sources()
        if module_name(path) not in EDGE
        for imported in imports_of(path)
        if imported.split(".")[0] in {"typer", "rich", "click"}
    ]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_backward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from mpspatch.render import x\nimport rich.table\n")
    assert {"mpspatch.render", "rich.table"} <= imports_of(bad)
