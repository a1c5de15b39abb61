"""Hostile inputs and faults: paths that leave the tree, special files as outputs, secrets in stage output,
bytes that are not UTF-8, resource bounds and fixable input that must not crash.

Every test drives real git repositories and the installed CLI (or the module under test) directly; no
stand-in programs are used.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Repo, cpp_source, pooled_stream_project

from mpspatch.foundation.config import Category
from mpspatch.model.series import compute_stats, is_allowed, parse_patch_bytes

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
                          env=env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return pooled_stream_project(tmp_path)


def _upstream(project: Path) -> Repo:
    return Repo(project.parent / "upstream")


# ------------------------------------------------------------------------------ paths that leave the tree


@pytest.mark.parametrize(("path", "allowed"), [
    ("test/test_mps.pyEVIL/x", False),
    ("test/test_mps.py", True),
    ("test/test_mps.py/inner", True),
    ("aten/src/ATen/mps/../../x", False),
    ("aten/src/ATen/mps/./x", False),
    ("/etc/passwd", False),
    ("aten/src/ATen/mps/Stream.mm", True),
    ("aten/src/ATen/mpsX/Stream.mm", False),
])
def test_allowed_paths_match_whole_components(path: str, allowed: bool) -> None:
    assert is_allowed(path, ("aten/src/ATen/mps/", "test/test_mps.py")) is allowed


def test_paths_with_dot_dot_are_refused_even_without_allowed_paths() -> None:
    assert not is_allowed("a/../../x", ())
    assert is_allowed("a/b", ())


def _symlink_patch(upstream: Repo, link: str, target: str) -> str:
    os.symlink(target, upstream.path / link)
    upstream.git("add", "-A")
    text = upstream.git("diff", "--cached", "--full-index", "v1.0")
    upstream.git("reset", "-q", "--hard")
    (upstream.path / link).unlink(missing_ok=True)
    return text


def test_a_symlink_out_of_the_tree_is_outside_allowed(tmp_path: Path) -> None:
    upstream = Repo.create(tmp_path / "up")
    upstream.write("aten/src/ATen/mps/A.mm", "a\n")
    upstream.commit("base", tag="v1.0")
    text = _symlink_patch(upstream, "aten/src/ATen/mps/evil", "../../../../../etc/passwd")
    assert "new file mode 120000" in text
    patch = parse_patch_bytes(tmp_path / "p.patch", text.encode())
    stats = compute_stats((patch,), (Category("Core", ("aten/**",)),), ("aten/src/ATen/mps/",))
    assert stats.outside_allowed == ("aten/src/ATen/mps/evil -> ../../../../../etc/passwd (a symlink out of the tree)",)
    inside = parse_patch_bytes(tmp_path / "q.patch", _symlink_patch(upstream, "aten/src/ATen/mps/ok", "A.mm").encode())
    assert compute_stats((inside,), (), ("aten/src/ATen/mps/",)).outside_allowed == ()


def test_import_refuses_a_symlink_out_of_the_tree(project: Path) -> None:
    upstream = _upstream(project)
    text = _symlink_patch(upstream, "aten/src/ATen/mps/evil", "/etc/passwd")
    (project / "evil.patch").write_text(text)
    before = (project / "patches/pool.patch").read_bytes()
    result = run_cli("import", "evil.patch", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "aten/src/ATen/mps/evil -> /etc/passwd (a symlink out of the tree)" in result.stderr
    assert (project / "patches/pool.patch").read_bytes() == before


def test_a_series_with_a_lookalike_prefix_is_refused(project: Path) -> None:
    upstream = _upstream(project)
    upstream.write("test/test_mps.pyEVIL/x", "evil\n")
    upstream.git("add", "-A")
    (project / "patches/pool.patch").write_text(upstream.git("diff", "--cached", "--full-index", "v1.0"))
    upstream.git("reset", "-q", "--hard")
    result = run_cli("drift", "--json", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "outside [series].allowed_paths: test/test_mps.pyEVIL/x" in result.stderr


# --------------------------------------------------------------------- outputs that are not regular files


def test_out_through_a_symlink_keeps_the_link_and_writes_its_target(project: Path) -> None:
    (project / "docs").mkdir()
    (project / "docs/audit.md").write_text("OLD-MARKER\n")
    (project / "audit-link.md").symlink_to("docs/audit.md")
    result = run_cli("render-audit", "--out", "audit-link.md", cwd=project)
    assert result.returncode in (0, 1), result.stderr
    assert (project / "audit-link.md").is_symlink()
    assert "OLD-MARKER" not in (project / "docs/audit.md").read_text()


def test_out_naming_a_fifo_or_a_folder_is_refused(project: Path) -> None:
    os.mkfifo(project / "pipe")
    (project / "folder").mkdir()
    for name, what in (("pipe", "is a FIFO"), ("folder", "is a folder")):
        result = run_cli("render-audit", "--out", name, cwd=project)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and what in result.stderr and name in result.stderr
    assert (project / "pipe").is_fifo() and (project / "folder").is_dir()


def test_drift_markdown_naming_a_folder_is_refused(project: Path) -> None:
    (project / "summary").mkdir()
    result = run_cli("drift", "--markdown", "summary", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "summary: is a folder" in result.stderr and "Traceback" not in result.stderr


def test_out_naming_a_device_writes_through_and_keeps_the_device(project: Path) -> None:
    import stat

    node = project / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the same device as /dev/null
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here ({exc}); needs root outside a restricted container")
    result = run_cli("render-audit", "--out", "null", cwd=project)
    assert result.returncode in (0, 1), result.stderr
    assert stat.S_ISCHR(node.lstat().st_mode)
    full = project / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # the same device as /dev/full: every write ENOSPC
    result = run_cli("render-audit", "--out", "full", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "full: the disk is full" in result.stderr and result.stderr.count("\n") == 1
    assert stat.S_ISCHR(full.lstat().st_mode)


# ------------------------------------------------------------------------------------ bytes that are not UTF-8


def test_a_patch_with_bytes_that_are_not_utf8_is_refused_naming_the_line(project: Path) -> None:
    upstream = _upstream(project)
    upstream.write("aten/src/ATen/mps/Latin1.mm", b"// caf\xe9\nint x;\n")
    upstream.git("add", "-A")
    data = subprocess.run(
        ["git", "diff", "--cached", "--full-index", "v1.0"], cwd=upstream.path, capture_output=True, check=True,
    ).stdout
    upstream.git("reset", "-q", "--hard")
    assert b"caf\xe9" in data
    (project / "latin1.patch").write_bytes(data)
    before = (project / "patches/pool.patch").read_bytes()
    result = run_cli("import", "latin1.patch", cwd=project)
    assert result.returncode == 2, result.stderr
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    assert f"latin1.patch:{line}: byte 0xe9 at column 8 is not UTF-8 (in aten/src/ATen/mps/Latin1.mm)" in result.stderr
    assert (project / "patches/pool.patch").read_bytes() == before
    (project / "patches/pool.patch").write_bytes(data)
    for command in (("regenerate",), ("rebase", "--onto", "main")):
        result = run_cli(*command, cwd=project)
        assert result.returncode == 2, (command, result.stderr)
        assert "is not UTF-8" in result.stderr and "\ufffd" not in result.stderr
    assert (project / "patches/pool.patch").read_bytes() == data


# ------------------------------------------------------------------------ upstream text and upstream URLs


def test_upstream_subjects_are_inert_in_the_drift_markdown(project: Path) -> None:
    upstream = _upstream(project)
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 7, variant=" upstream"))
    evil = "Fix <img src=x onerror=alert(1)> ![pwn](https://evil.example/p.png) [click](https://evil.example)"
    upstream.commit(evil)
    result = run_cli("drift", "--markdown", "drift.md", cwd=project)
    assert result.returncode in (0, 1), result.stderr
    text = (project / "drift.md").read_text()
    assert "Fix" in text and "onerror" in text  # the subject is shown, as text
    assert "<img" not in text and "&lt;img" in text
    assert "![pwn](" not in text and "[click](" not in text


def test_a_token_in_the_upstream_url_is_never_shown(project: Path) -> None:
    token = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    config = project / "mpspatch.toml"
    config.write_text(config.read_text()
                      .replace("https://example.invalid/upstream.git", f"https://bot:{token}@127.0.0.1:9/x.git")
                      .replace("../upstream", "../not-cloned-yet"))
    result = run_cli("rebase", "--onto", "main", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "could not clone" in result.stderr and "127.0.0.1:9" in result.stderr
    assert token not in result.stderr + result.stdout


# ------------------------------------------------------------------------------- fixable input, not a crash


def test_a_checkout_that_is_a_file_is_bad_input(project: Path) -> None:
    (project.parent / "afile").write_text("not a clone\n")
    config = project / "mpspatch.toml"
    config.write_text(config.read_text().replace('checkout = "../upstream"', 'checkout = "../afile"'))
    for command in ("drift", "lock"):
        result = run_cli(command, cwd=project)
        assert result.returncode == 2, (command, result.stderr)
        assert "afile: is a file" in result.stderr and "internal error" not in result.stderr
    status = run_cli("status", cwd=project)  # status reports what it can
    assert status.returncode in (0, 1, 2) and "internal error" not in status.stderr


def test_a_full_disk_under_the_stage_log_is_bad_input_not_a_hang(project: Path) -> None:
    runs = project / "audit/runs"
    runs.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(runs)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill here: {mounted.stderr.strip()}")
    try:
        config = project / "mpspatch.toml"
        config.write_text(config.read_text() + '\n[[stages]]\nname = "big"\nkind = "command"\ntimeout = 60\n'
                          'run = [["sh", "-c", "yes 0123456789abcdef0123456789abcdef | head -c 8000000"]]\n')
        started = time.monotonic()
        result = run_cli("verify", cwd=project)
        assert time.monotonic() - started < 30  # the stage is stopped, not left blocked on a pipe nobody reads
        assert result.returncode == 2, result.stderr
        assert result.stderr.endswith("/logs/big.log: the disk is full (No space left on device); free some space "
                                      "or write elsewhere\n"), result.stderr
        assert "Traceback" not in result.stderr
    finally:
        subprocess.run(["umount", str(runs)], capture_output=True, check=False)


def test_a_full_disk_under_the_state_folder_is_bad_input(project: Path) -> None:
    state = project / ".mpspatch"
    state.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(state)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill here: {mounted.stderr.strip()}")
    try:
        result = run_cli("drift", cwd=project)  # the shadow cannot even be made
        assert result.returncode == 2, result.stderr
        assert f"{state}: the disk is full, git could not write (" in result.stderr
        assert "No space left on device); free some space" in result.stderr and "Traceback" not in result.stderr
        result = run_cli("rebase", "--onto", "main", cwd=project)  # the lock's note of who holds it
        assert result.returncode == 2, result.stderr
        assert result.stderr.endswith(f"{state}/writer.lock: cannot write the project lock (No space left on device); "
                                      f"free some space in {state} and run the command again\n"), result.stderr
    finally:
        subprocess.run(["umount", str(state)], capture_output=True, check=False)


def test_a_config_that_is_a_folder_is_bad_input(project: Path) -> None:
    (project / "conf").mkdir()
    result = run_cli("--config", "conf", "stats", cwd=project)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"mpspatch: error: {project / 'conf'}: is a folder, not a config file; pass --config "
                             "with the mpspatch.toml file itself\n")


def test_prose_that_is_not_utf8_is_bad_input(project: Path) -> None:
    config = project / "mpspatch.toml"
    config.write_text(config.read_text() + '\n[render]\nprose = "prose"\n')
    (project / "prose").mkdir()
    (project / "prose/summary.md").write_bytes(b"# Summary\ncaf\xe9\n")
    result = run_cli("render-audit", "--out", "audit.md", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "prose/summary.md:2: byte 0xe9 is not UTF-8" in result.stderr


def test_a_stage_program_that_is_not_executable_is_named_with_the_fix(project: Path) -> None:
    script = project / "stage.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    config = project / "mpspatch.toml"
    config.write_text(config.read_text() + f'\n[[stages]]\nname = "s"\nkind = "command"\nrun = [["{script}"]]\n')
    result = run_cli("verify", "--json", cwd=project)
    assert result.returncode == 2, result.stderr
    error = f"mpspatch: error: stage 's': {script}: cannot be run (Permission denied); make it executable " \
            f"(`chmod +x {script}`) or run it through its interpreter\n"
    assert result.stderr.endswith(error) and "internal error" not in result.stderr, result.stderr
    (stage,) = json.loads(result.stdout)["stages"]  # the evidence still records the stage
    assert stage["status"] == "error" and "cannot be run" in stage["reason"] and "chmod +x" in stage["reason"]


def test_a_stage_program_that_is_not_found_is_named_with_the_fix(project: Path) -> None:
    config = project / "mpspatch.toml"
    config.write_text(config.read_text() + '\n[[stages]]\nname = "first"\nkind = "command"\nrun = [["true"]]\n'
                      '\n[[stages]]\nname = "lint"\nkind = "command"\nrun = [["no-such-linter-mpspatch", "-q"]]\n')
    result = run_cli("verify", cwd=project)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith("mpspatch: error: stage 'lint': program not found: no-such-linter-mpspatch; install "
                                  "it, put it on PATH or fix the stage's run in mpspatch.toml\n"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_stage_program_that_is_a_folder_is_named_as_one(project: Path) -> None:
    (project / "tools").mkdir()
    config = project / "mpspatch.toml"
    config.write_text(config.read_text()
                      + f'\n[[stages]]\nname = "s"\nkind = "command"\nrun = [["{project / "tools"}"]]\n')
    result = run_cli("verify", cwd=project)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(f"mpspatch: error: stage 's': {project / 'tools'}: is a folder, not a program; name "
                                  "the program to run\n"), result.stderr


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only for this process: chmod for a user, a read-only bind mount for root (which chmod does
    not bind); skipped, with the reason, where neither works."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        try:
            for each in modes:
                each.chmod(0o555)
            yield
        finally:
            for each, mode in modes.items():
                each.chmod(mode)
        return
    bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"running as root and cannot bind-mount read-only: {bound.stderr.strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True,
                            check=False)
        if ro.returncode != 0:
            pytest.skip(f"running as root and cannot remount read-only: {ro.stderr.strip()}")
        yield
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def _tree_snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("shadow_made", [True, False], ids=["shadow-made", "no-shadow-yet"])
def test_read_only_commands_work_on_a_read_only_project(project: Path, tmp_path: Path, shadow_made: bool) -> None:
    assert run_cli("lock", cwd=project).returncode == 0
    if shadow_made:
        assert run_cli("drift", cwd=project).returncode in (0, 1)  # the shadow exists before the folder is locked
    assert run_cli("render-audit", "--out", "audit-kept.md", cwd=project).returncode in (0, 1)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    before = _tree_snapshot(project)
    with _read_only(project):
        assert not os.access(project, os.W_OK) or os.geteuid() == 0
        for args in (("drift",), ("drift", "--json"), ("regenerate", "--check"), ("status",), ("status", "--json"),
                     ("render-audit", "--check", "--out", "audit-kept.md")):
            result = run_cli(*args, cwd=project, env=env)
            assert result.returncode in (0, 1), (args, result.stderr)
            assert "Traceback" not in result.stderr and str(scratch) not in result.stderr + result.stdout, args
        result = run_cli("render-audit", "--out", "audit.md", cwd=project, env=env)
        assert result.returncode == 2 and "audit.md" in result.stderr, result.stderr
        for args in (("rebase", "--onto", "main"), ("verify",)):  # commands that write state say what to fix
            result = run_cli(*args, cwd=project, env=env)
            assert result.returncode == 2 and "writable" in result.stderr, (args, result.stderr)
    assert _tree_snapshot(project) == before
    assert list(scratch.iterdir()) == []  # the throwaway shadow went with each process
