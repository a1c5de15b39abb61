"""The GitHub Actions workflows, checked offline.

The workflows cannot run here, so everything that can be checked without GitHub is: the workflow schema
(check-jsonschema), the security audit (zizmor, offline, medium severity and up) and the promises the
workflows make, read from the parsed YAML. Each tool also gets a known-bad workflow, so a gate that
silently stopped gating would fail here too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
DEV_HINT = "install the dev extra: python -m pip install -e '.[dev]'"
CONTRACT_COMMANDS = frozenset(
    {"drift", "rebase", "verify", "render-pr", "render-issue", "render-audit", "status", "demo", "stats"}
)
_PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+\s*$")


# --- helpers ---------------------------------------------------------------------------------------


def _tool(name: str) -> Path:
    """The console script installed beside this interpreter; a missing one fails, never skips."""
    bindir = Path(sys.executable).parent
    for candidate in (bindir / name, bindir / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    pytest.fail(f"{name} is not installed next to {sys.executable}; {DEV_HINT}", pytrace=False)


def _run(argv: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    # The one place this module starts a process. GH_TOKEN and friends are dropped so that zizmor
    # cannot go online even if a future version ignores --offline.
    env = {
        k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}
    }
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [str(a) for a in argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert {p.name for p in files} >= {"ci.yml", "upstream.yml"}, f"workflows missing in {WORKFLOWS}"
    return files


def _load(path: Path) -> object:
    try:
        from ruamel.yaml import YAML
    except ImportError:
        pytest.fail(f"ruamel.yaml is not importable; {DEV_HINT}", pytrace=False)
    # YAML 1.2, so the key `on` stays the string "on" instead of becoming True.
    loaded: object = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    return loaded


def _map(value: object, where: str) -> dict[str, object]:
    assert isinstance(value, dict), f"{where}: expected a mapping, got {type(value).__name__}"
    return {str(k): v for k, v in value.items()}


def _list(value: object, where: str) -> list[object]:
    assert isinstance(value, list), f"{where}: expected a list, got {type(value).__name__}"
    return value


@dataclass(frozen=True)
class Step:
    workflow: str
    job: str
    index: int
    body: dict[str, object]

    @property
    def where(self) -> str:
        return f"{self.workflow}: jobs.{self.job}.steps[{self.index}] ({self.body.get('name', '')})"

    @property
    def uses(self) -> str:
        value = self.body.get("uses", "")
        return value if isinstance(value, str) else ""

    @property
    def run(self) -> str:
        value = self.body.get("run", "")
        return value if isinstance(value, str) else ""

    @property
    def with_(self) -> dict[str, object]:
        return _map(self.body.get("with", {}), f"{self.where}.with")


def _doc(name: str) -> dict[str, object]:
    return _map(_load(WORKFLOWS / name), name)


def _jobs(name: str) -> dict[str, dict[str, object]]:
    jobs = _map(_doc(name).get("jobs"), f"{name}: jobs")
    return {job: _map(body, f"{name}: jobs.{job}") for job, body in jobs.items()}


def _steps(name: str, job: str | None = None) -> Iterator[Step]:
    for job_name, body in _jobs(name).items():
        if job is not None and job_name != job:
            continue
        for index, step in enumerate(_list(body.get("steps", []), f"{name}: jobs.{job_name}.steps")):
            yield Step(name, job_name, index, _map(step, f"{name}: jobs.{job_name}.steps[{index}]"))


def _all_steps() -> Iterator[Step]:
    for path in _workflow_files():
        yield from _steps(path.name)


def _bad_workflow(tmp_path: Path) -> Path:
    """A workflow with the classic holes: fork code under pull_request_target, an unpinned action,
    persisted credentials, and an attacker-controlled expression inside a shell script."""
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    bad = folder / "bad.yml"
    bad.write_text(
        "name: bad\n"
        "on:\n  pull_request_target:\n"
        "jobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n',
        encoding="utf-8",
    )
    return folder


# --- the external gates --------------------------------------------------------------------------


def test_workflows_validate_against_github_schema() -> None:
    result = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *_workflow_files()]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  x:\n    steps: []\n", encoding="utf-8")  # no runs-on
    result = _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", broken])
    assert result.returncode == 1, result.stdout + result.stderr


def _zizmor(target: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            _tool("zizmor"),
            "--offline",
            "--min-severity",
            "medium",
            "--no-progress",
            "--color",
            "never",
            target,
        ]
    )


def test_zizmor_finds_nothing_at_medium_or_above() -> None:
    result = _zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_gate_fails_a_dangerous_workflow(tmp_path: Path) -> None:
    result = _zizmor(_bad_workflow(tmp_path))
    # zizmor exits 1 or 2 for its own errors and 10 and up for findings.
    assert result.returncode >= 10, result.stdout + result.stderr
    assert "template-injection" in result.stdout, result.stdout


def test_shell_in_workflows_and_ci_scripts_passes_shellcheck(tmp_path: Path) -> None:
    # Every job here runs its steps with bash (-e, pipefail), so each run: block is checked as bash.
    scripts = [ROOT / ".ci" / "fetch-pytorch"]
    for step in _all_steps():
        if step.run:
            script = tmp_path / f"{step.workflow}-{step.job}-{step.index}.sh"
            script.write_text(
                f"#!/usr/bin/env bash\n# {step.where}\nset -eo pipefail\n{step.run}", encoding="utf-8"
            )
            scripts.append(script)
    result = _run([_tool("shellcheck"), "--severity", "style", *scripts])
    assert result.returncode == 0, result.stdout + result.stderr


# --- promises read from the YAML -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ci.yml", "upstream.yml"])
def test_permissions_are_read_only_at_top_and_never_widened(name: str) -> None:
    doc = _doc(name)
    assert _map(doc.get("permissions"), f"{name}: permissions") == {"contents": "read"}
    for job, body in _jobs(name).items():
        if "permissions" in body:
            granted = _map(body["permissions"], f"{name}: jobs.{job}.permissions")
            writes = {scope for scope, level in granted.items() if level == "write"}
            assert not writes, f"{name}: jobs.{job} widens permissions to write: {sorted(writes)}"


@pytest.mark.parametrize("name", ["ci.yml", "upstream.yml"])
def test_no_trigger_runs_fork_code_with_privileges(name: str) -> None:
    triggers = _map(_doc(name).get("on"), f"{name}: on")
    assert not set(triggers) & {"pull_request_target", "workflow_run"}, f"{name}: privileged trigger"


@pytest.mark.parametrize("name", ["ci.yml", "upstream.yml"])
def test_concurrency_group_is_set(name: str) -> None:
    concurrency = _map(_doc(name).get("concurrency"), f"{name}: concurrency")
    assert isinstance(concurrency.get("group"), str) and concurrency["group"], name


@pytest.mark.parametrize("name", ["ci.yml", "upstream.yml"])
def test_every_job_has_a_timeout_within_the_hosted_limit(name: str) -> None:
    for job, body in _jobs(name).items():
        timeout = body.get("timeout-minutes")
        assert isinstance(timeout, int), f"{name}: jobs.{job} has no timeout-minutes"
        assert 0 < timeout <= 360, f"{name}: jobs.{job} timeout {timeout} is beyond the 6 h hosted limit"


def test_every_checkout_drops_credentials() -> None:
    checkouts = [s for s in _all_steps() if s.uses.startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step.with_.get("persist-credentials") is False, (
            f"{step.where}: persist-credentials is not false"
        )


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    for path in _workflow_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.match(r"^\s*(?:-\s+)?uses:", line):
                assert _PINNED_USES.match(line), f"{path.name}:{number}: pin to a 40-hex SHA plus '# vX.Y.Z'"


def test_no_secrets_and_no_expressions_inside_scripts() -> None:
    # Untrusted text (inputs, event fields) reaches scripts only through env, where the shell quotes it.
    for path in _workflow_files():
        assert "secrets." not in path.read_text(encoding="utf-8"), f"{path.name} uses a secret"
    for step in _all_steps():
        assert "${{" not in step.run, f"{step.where}: move the expression into env"


def test_workflows_call_only_contract_commands() -> None:
    used: set[str] = set()
    for step in _all_steps():
        for command in re.findall(r"\bmpspatch \"?([a-z][a-z$-]*)", step.run):
            # The workflows loop `for kind in pr issue audit; do mpspatch "render-$kind" ...`.
            used |= {"render-pr", "render-issue", "render-audit"} if command == "render-$kind" else {command}
    assert used, "no mpspatch command found in any workflow"
    assert used <= CONTRACT_COMMANDS, f"not in the CLI contract: {sorted(used - CONTRACT_COMMANDS)}"


def test_upstream_runs_nightly_and_on_demand_with_an_onto_input() -> None:
    triggers = _map(_doc("upstream.yml").get("on"), "upstream.yml: on")
    schedule = _list(triggers.get("schedule"), "upstream.yml: on.schedule")
    assert any(isinstance(entry, dict) and entry.get("cron") for entry in schedule)
    dispatch = _map(triggers.get("workflow_dispatch"), "upstream.yml: on.workflow_dispatch")
    onto = _map(_map(dispatch.get("inputs"), "inputs").get("onto"), "inputs.onto")
    assert onto.get("default") == "viable/strict"


def test_drift_job_forecasts_from_a_partial_sparse_clone() -> None:
    runs = "\n".join(step.run for step in _steps("upstream.yml", "drift"))
    assert ".ci/fetch-pytorch" in runs
    assert re.search(r"mpspatch drift .*--json .*--markdown", runs)
    assert "GITHUB_STEP_SUMMARY" in runs
    uploads = [s for s in _steps("upstream.yml", "drift") if s.uses.startswith("actions/upload-artifact@")]
    assert uploads, "drift must upload its JSON"
    script = (ROOT / ".ci" / "fetch-pytorch").read_text(encoding="utf-8")
    assert "git clone --filter=blob:none --sparse --no-checkout" in script


def test_build_lint_runs_on_hosted_arm64_with_ccache_keyed_on_base_and_series() -> None:
    job = _jobs("upstream.yml")["build-lint"]
    assert job.get("runs-on") in {"macos-14", "macos-15"}
    steps = list(_steps("upstream.yml", "build-lint"))
    keys = [str(s.with_.get("key", "")) for s in steps if s.uses.startswith("actions/cache/")]
    assert len(keys) == 2 and keys[0] == keys[1], "restore and save must use one key"
    assert "steps.key.outputs.base" in keys[0] and "steps.key.outputs.series-sha256" in keys[0]
    runs = "\n".join(step.run for step in steps)
    assert "mpspatch verify --stage build --stage lint" in runs
    assert 'mpspatch "render-$kind" --check' in runs and "for kind in pr issue audit" in runs
    assert "df -h" in runs and "rm -rf" in runs, "hosted macOS needs the disk clean-up and report"


def test_mps_job_is_self_hosted_and_gated_by_a_variable() -> None:
    jobs = _jobs("upstream.yml")
    mps = jobs["mps"]
    labels = _list(mps.get("runs-on"), "jobs.mps.runs-on")
    assert set(labels) == {"self-hosted", "macOS", "ARM64"}
    assert "vars.MPS_RUNNER_ENABLED == 'true'" in str(mps.get("if", ""))
    runs = "\n".join(step.run for step in _steps("upstream.yml", "mps"))
    assert re.search(r"mpspatch verify( --stage build)? --stage tsan --stage tests --stage stress", runs)
    skipped = jobs["mps-skipped"]
    assert "vars.MPS_RUNNER_ENABLED != 'true'" in str(skipped.get("if", ""))
    assert skipped.get("runs-on") == "ubuntu-latest"
    assert "GITHUB_STEP_SUMMARY" in "\n".join(step.run for step in _steps("upstream.yml", "mps-skipped"))


def test_ci_covers_both_systems_and_all_supported_pythons() -> None:
    job = _jobs("ci.yml")["test"]
    matrix = _map(_map(job.get("strategy"), "strategy").get("matrix"), "matrix")
    assert set(_list(matrix.get("os"), "os")) == {"ubuntu-latest", "macos-latest"}
    assert set(_list(matrix.get("python"), "python")) == {"3.11", "3.12", "3.13"}
    runs = [step.run for step in _steps("ci.yml", "test")]
    for command in ("make test", "make demo", "ruff check", "mypy --strict"):
        assert any(command in run for run in runs), f"ci.yml does not run {command!r}"


def test_drift_job_keeps_a_history_in_the_cache_and_charts_it() -> None:
    steps = list(_steps("upstream.yml", "drift"))
    caches = [s for s in steps if s.uses.startswith("actions/cache/")]
    assert [s.uses.split("@")[0] for s in caches] == ["actions/cache/restore", "actions/cache/save"]
    assert caches[0].with_.get("key") == caches[1].with_.get("key"), "restore and save must use one key"
    assert "github.run_id" in str(caches[0].with_.get("key")), "each night needs a new key to save under"
    assert "drift-history-" in str(caches[0].with_.get("restore-keys"))
    assert caches[0].with_.get("path") == caches[1].with_.get("path")
    record = next(s for s in steps if ".ci/gha.py drift-history" in s.run)
    assert "GITHUB_STEP_SUMMARY" in record.run and "!cancelled()" in str(record.body.get("if"))
    order = [s.body.get("name") for s in steps]
    assert order.index(caches[0].body.get("name")) < order.index(record.body.get("name")) < order.index(
        caches[1].body.get("name"))


@pytest.mark.parametrize("job", ["build-lint", "mps"])
def test_verify_findings_become_annotations(job: str) -> None:
    steps = list(_steps("upstream.yml", job))
    names = [s.body.get("name") for s in steps]
    annotate = next(s for s in steps if ".ci/gha.py annotate" in s.run)
    assert "!cancelled()" in str(annotate.body.get("if"))
    verify = next(s for s in steps if "mpspatch verify" in s.run)
    assert names.index(verify.body.get("name")) < names.index(annotate.body.get("name"))


def test_mps_job_uploads_the_junit_files_from_the_evidence() -> None:
    uploads = [s for s in _steps("upstream.yml", "mps") if s.uses.startswith("actions/upload-artifact@")]
    junit = [s for s in uploads if s.with_.get("name") == "junit"]
    assert junit and str(junit[0].with_.get("path")).endswith("/evidence/*/logs/*.junit.xml")
