"""What verify keeps of a stage's output: secrets redacted, bounded memory and size, no false passes.

Stages are real programs (sh, python) run by the installed CLI on real throwaway git repositories; no
stand-in programs are used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_verify import Project, run_cli, stage_toml


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


# ------------------------------------------------------------------------------------------ false passes


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5"])
def test_a_timeout_that_is_not_a_positive_number_is_a_config_error(project: Project, value: str) -> None:
    project.stages(stage_toml("ok", "command", [["true"]]).replace("\n\n", f"\ntimeout = {value}\n\n"))
    result = run_cli("verify", "--json", cwd=project.dir)
    assert result.returncode == 2, result.stderr
    assert "[stages.ok].timeout must be a positive number of seconds" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["command", "tsan"])
def test_a_malformed_counts_line_is_an_error_not_a_pass(project: Project, kind: str) -> None:
    project.stages(stage_toml("stress", kind, [["sh", "-c", "echo 'mpspatch-counts: rounds=20 crashes=one'"]]))
    result = run_cli("verify", "--json", cwd=project.dir)
    assert result.returncode == 1, result.stderr
    (stage,) = json.loads(result.stdout)["stages"]
    assert stage["status"] == "error"
    assert "malformed counts line 'mpspatch-counts: rounds=20 crashes=one'" in stage["reason"]




# ---------------------------------------------------------------------------------------------- secrets

GH_TOKEN_VALUE = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SECRETS = {
    "GITHUB_TOKEN": GH_TOKEN_VALUE,
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
    "GH_PAT": "plainlookingvalue42",  # secret by name only
    "DATABASE_URL": "postgres://app:hunter2hunter@db.internal/app",  # secret by shape only
}
ARGV_TOKEN = "s3cr3t-from-argv-77"


def test_secrets_never_reach_log_evidence_json_or_documents(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    script = ("echo token=$GITHUB_TOKEN; echo aws $AWS_SECRET_ACCESS_KEY; echo pat $GH_PAT; echo db $DATABASE_URL; "
              "echo 'Authorization: Bearer abcdefghijklmnop1234'; echo AKIAIOSFODNN7EXAMPLE; "
              "echo \"error: push to https://bot:$GH_PAT@github.com/o/r failed\"; echo \"$1\"; exit 1")
    project.stages(stage_toml("leaky", "command", [["sh", "-c", script, "sh", f"--token={ARGV_TOKEN}"]],
                              env={"MY_API_KEY": "stage-env-secret-9"}))
    result = run_cli("verify", "--json", cwd=project.dir)
    assert result.returncode == 1, result.stderr
    status = run_cli("status", "--json", cwd=project.dir)
    audit = run_cli("render-audit", "--out", "audit.md", cwd=project.dir)
    assert audit.returncode in (0, 1), audit.stderr
    written = "\n".join(p.read_text(errors="replace") for p in project.dir.rglob("*")
                        if p.is_file() and p.name != "mpspatch.toml"  # the user's own config holds them
                        and ".git" not in p.parts and "worktrees" not in p.parts)
    shown = result.stdout + result.stderr + status.stdout + status.stderr + audit.stdout + audit.stderr
    for secret in [*SECRETS.values(), "hunter2hunter", ARGV_TOKEN, "stage-env-secret-9", "abcdefghijklmnop1234",
                   "AKIAIOSFODNN7EXAMPLE"]:
        assert secret not in written, f"{secret} was written"
        assert secret not in shown, f"{secret} was shown"
    (stage,) = json.loads(result.stdout)["stages"]
    log = Path(stage["log"]).read_text()
    assert "aws ***" in log and "pat ***" in log and "Bearer ***" in log and "--token=***" in log
    (evidence,) = project.dir.glob("audit/runs/*/evidence.json")
    assert '"MY_API_KEY": "***"' in evidence.read_text() or '["MY_API_KEY", "***"]' in evidence.read_text()


# ------------------------------------------------------------------------------------------ resource bounds


def test_huge_output_is_streamed_capped_and_noted(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from mpspatch.verify import logsink

    monkeypatch.setattr(logsink, "MAX_LOG_BYTES", 1024 * 1024)
    monkeypatch.setattr(logsink, "TAIL_BYTES", 128 * 1024)
    monkeypatch.setattr(logsink, "MAX_LINE_BYTES", 4096)
    program = ("import sys\nfor i in range(100000): print('line', i, 'x' * 60)\n"
               "print('y' * 3_000_000)\nprint('error: the very last line', flush=True)\nsys.exit(1)\n")
    project.stages(stage_toml("loud", "command", [[sys.executable, "-c", program]]))
    outcome = project.verify()
    (stage,) = outcome.run.stages
    log = outcome.run_dir / "logs/loud.log"
    size = log.stat().st_size
    assert size < 1024 * 1024 + 200 * 1024, size
    text = log.read_text()
    assert "mpspatch: log capped at 1048576 bytes;" in text
    assert "line 0 " in text and "error: the very last line" in text
    assert "[mpspatch: line cut, " in text and "y" * 5000 not in text
    assert stage.status == "failed" and "error: the very last line" in stage.reason
    assert len(stage.reason) <= 500 and all(len(d) <= 300 for d in stage.details)


def test_memory_stays_flat_however_much_a_stage_prints(project: Project) -> None:
    # 300 MB of output: hashing or reading the log whole would take more memory than that.
    project.stages(stage_toml("flood", "command", [["sh", "-c", "head -c 300000000 /dev/zero | tr '\\\\0' 'a' "
                                                                 "| fold -w 100"]]))
    probe = ("import resource, subprocess, sys\n"
             "subprocess.run([sys.executable, '-m', 'mpspatch.cli', 'verify', '--json'], stdout=subprocess.DEVNULL)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=project.dir, capture_output=True, text=True,
                          timeout=600, check=True)
    peak_kib = int(done.stdout.strip())
    assert peak_kib < 200 * 1024, f"peak memory {peak_kib // 1024} MiB"
