"""From a built wheel to a full `status`, as a new user gets there: nothing from this repository but the wheel.

The wheel is built with `pip wheel --no-deps`, installed into a fresh `python -m venv` (its dependencies from
pip's configured indexes; failing that, offline from the configured find-links folders), and its `mpspatch`
console script then runs `init --from-patch` against a throwaway upstream repository, `lock`, `status --json`
and `report --html`, from a folder outside this repository with no PYTHONPATH. When the wheel cannot be built
or installed here (no build backend, no dependencies reachable offline) the test is skipped with pip's reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from scenarios import build_upstream, diff_against, patch1_files

ROOT = Path(__file__).resolve().parent.parent


def _pip_find_links() -> list[str]:
    """The folders of wheels pip is configured with (PIP_FIND_LINKS, pip.conf): the offline fallback."""
    found = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                           check=False, timeout=60).stdout
    links = [line.split("=", 1)[1].strip().strip("'\"") for line in found.splitlines()
             if line.split("=", 1)[0].endswith("find-links")]
    links += os.environ.get("PIP_FIND_LINKS", "").split()
    return [link for link in dict.fromkeys(links) if link and Path(link).is_dir()]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MPSPATCH_", "PYTHON", "VIRTUAL_ENV"))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of a fresh venv with the built wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = tmp / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, check=False, timeout=600)
    if built.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {built.stderr.strip()[-300:]}")
    wheel = next(wheels.glob("mpspatch-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    online = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, check=False, timeout=900,
                            env=_clean_env())
    if online.returncode != 0:
        links = [arg for link in [str(wheels), *_pip_find_links()] for arg in ("--find-links", link)]
        offline = subprocess.run([*pip, "--no-index", *links, str(wheel)], capture_output=True, text=True,
                                 check=False, timeout=900, env=_clean_env())
        if offline.returncode != 0:
            pytest.skip("cannot install the wheel's dependencies offline here: "
                        f"{offline.stderr.strip()[-300:] or online.stderr.strip()[-300:]}")
    return env_dir / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "mpspatch"), *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=300, env=_clean_env())


def test_the_installed_wheel_takes_a_new_project_to_every_checklist_row(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c", "import mpspatch; print(mpspatch.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=_clean_env()).stdout
    assert "site-packages" in where and str(ROOT) not in where, "the venv must run the wheel, not this checkout"
    version = run(installed, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("mpspatch "), version.stderr

    upstream, _ = build_upstream(tmp_path / "pytorch")
    patch = tmp_path / "downloads" / "stream-pool-v1.0.patch"
    patch.parent.mkdir()
    patch.write_text(diff_against(upstream, "v1.0", patch1_files()))
    upstream.git("checkout", "-q", "main")
    project = tmp_path / "project"
    done = run(installed, "init", str(project), "--from-patch", str(patch), "--upstream", str(upstream.path),
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    locked = run(installed, "lock", cwd=project)
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((project / "patches/series.lock").read_text())
    assert lock["written_by"] == f"mpspatch lock (mpspatch {version.stdout.split()[1]})"

    status = run(installed, "status", "--json", cwd=project)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert "requirements" not in {g["id"] for g in report["gaps"]}, "the starter's checklist is in the wheel"
    # Every row of the checklist this repository ships is reached: each stage and check it names, each human action.
    checklist = tomllib.loads((ROOT / "audit/requirements.toml").read_text())["requirement"]
    assert (project / "audit/requirements.toml").read_bytes() == (ROOT / "audit/requirements.toml").read_bytes()
    rows = {c["name"] for c in report["checks"]} | {s["name"] for s in report["stages"]}
    asked = {r["satisfied_by"].get("check") or r["satisfied_by"].get("stage") for r in checklist} - {None}
    assert asked <= rows, asked - rows
    assert len(report["human_actions"]) == sum("human" in r["satisfied_by"] for r in checklist)
    assert report["lock"]["matches"] is True

    page = tmp_path / "report.html"
    written = run(installed, "report", "--html", str(page), cwd=project)
    assert written.returncode == 0, written.stderr
    assert "<table id=\"checklist\">" in page.read_text(), "the HTML template is in the wheel"
