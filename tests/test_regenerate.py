"""`mpspatch import` and `mpspatch regenerate` on the shared scenarios, through the real CLI."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios import STREAM_MM, TORCH_MPS, Scenario, build_scenario
from test_rebase import git, run_cli

import mpspatch
from mpspatch.foundation.errors import InputError
from mpspatch.git.verbs import PATCH_DIFF_ARGS
from mpspatch.operations import regenerate as regenerate_module
from mpspatch.operations.regenerate import CANONICAL_URL


def abbreviate(text: str) -> str:
    """What the real dropbox/dML patch looks like: `index` lines with 8-hex abbreviations."""
    return re.sub(r"^index ([0-9a-f]{8})[0-9a-f]{32}\.\.([0-9a-f]{8})[0-9a-f]{32}", r"index \1..\2", text,
                  flags=re.M)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def single(tmp_path: Path) -> Scenario:
    return build_scenario(tmp_path, layout="single")


def cli_json(scenario: Scenario, *args: str) -> tuple[int, dict[str, object]]:
    result = run_cli(scenario, *args, "--json")
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


# ------------------------------------------------------------------------------------------------- import


def test_import_file_rewrites_abbreviated_index_lines_in_canonical_form(single: Scenario, tmp_path: Path) -> None:
    patch = single.patches[0]
    canonical = patch.read_bytes()
    outside = tmp_path / "from-elsewhere.patch"
    outside.write_text(abbreviate(canonical.decode()))
    assert outside.read_bytes() != canonical
    code, data = cli_json(single, "import", str(outside))
    assert code == 0, data
    assert data["kind"] == "file" and data["canonical"] is True and data["base"] == single.tags["v1.0"]
    assert patch.read_bytes() == canonical  # full index lines restored from the blobs at the base
    lock = json.loads((single.project / "patches/series.lock").read_text())
    assert lock["base"] == single.tags["v1.0"]
    assert lock["written_by"] == f"mpspatch import (mpspatch {mpspatch.__version__})"
    assert lock["patches"][0]["sha256"] == sha(patch)
    assert (single.project / ".mpspatch/previous" / f"{patch.name}.1").read_bytes() == canonical


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder (there is no internet here)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_url_over_http_and_file(single: Scenario, served: tuple[str, Path]) -> None:
    root_url, folder = served
    canonical = single.patches[0].read_bytes()
    remote = folder / "metal_mps_parallel/patches/cumulative.patch"
    remote.parent.mkdir(parents=True)
    remote.write_text(abbreviate(canonical.decode()))
    single.patches[0].write_text("")  # whatever was there is replaced
    code, data = cli_json(single, "import", f"{root_url}/metal_mps_parallel/patches/cumulative.patch")
    assert code == 0 and data["kind"] == "url"
    assert single.patches[0].read_bytes() == canonical
    code, data = cli_json(single, "import", remote.as_uri())
    assert code == 0 and data["kind"] == "url" and single.patches[0].read_bytes() == canonical
    missing = run_cli(single, "import", f"{root_url}/nope.patch")
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr


def test_canonical_url_is_the_dml_patch() -> None:
    assert CANONICAL_URL.startswith("https://raw.githubusercontent.com/dropbox/dML/")
    assert CANONICAL_URL.endswith("/metal_mps_parallel/patches/cumulative-v2.9.1-to-mps-stream-pool.patch")


def test_import_refuses_and_lists_paths_outside_allowed(single: Scenario, tmp_path: Path) -> None:
    before = sha(single.patches[0])
    fork = tmp_path / "fork"
    git(single.root, "clone", "-q", str(single.checkout), str(fork))
    git(fork, "checkout", "-q", "v1.0")
    (fork / "README.md").write_text("changed\n")
    (fork / "c10/core/Allocator.h").write_text("changed\n")
    bad = tmp_path / "bad.patch"
    bad.write_text(git(fork, "diff", "--full-index"))
    result = run_cli(single, "import", str(bad))
    assert result.returncode == 2
    assert "2 path(s) outside [series].allowed_paths: README.md, c10/core/Allocator.h" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sha(single.patches[0]) == before
    from_fork = run_cli(single, "import", str(fork))
    assert from_fork.returncode == 2 and "README.md" in from_fork.stderr


def test_import_from_fork_is_git_diff_base(single: Scenario, tmp_path: Path) -> None:
    canonical = single.patches[0].read_bytes()
    fork = tmp_path / "fork"
    git(single.root, "clone", "-q", str(single.checkout), str(fork))
    git(fork, "checkout", "-q", "-b", "mps-stream-pool", "v1.0")
    git(fork, "apply", "--index", str(single.patches[0]))
    git(fork, "commit", "-q", "-m", "part one")
    (fork / "torch/mps/notes.py").write_text("untracked\n")
    single.patches[0].write_text("")
    code, data = cli_json(single, "import", str(fork))
    assert code == 0 and data["kind"] == "fork"
    assert single.patches[0].read_bytes() == canonical
    assert any("torch/mps/notes.py" in n for n in data["notes"])  # untracked files are named, not taken


def downstream_fork(scenario: Scenario, fork: Path, at: str) -> None:
    """A fork cloned from the upstream, branched at `at`, with downstream edits: committed and uncommitted."""
    # Every file upstream touched after v1.0 is allowed, so nothing but this check stops an inflated patch.
    config = scenario.config.read_text()
    if '"c10/"' not in config:
        wider = 'allowed_paths = ["c10/", "torch/__init__.py", '
        scenario.config.write_text(config.replace("allowed_paths = [", wider))
    git(scenario.root, "clone", "-q", str(scenario.upstream.path), str(fork))
    git(fork, "checkout", "-q", "-b", "mps-stream-pool", at)
    stream = fork / STREAM_MM
    stream.write_text(stream.read_text() + "// downstream: stream pool note\n")
    (fork / "torch/mps/extra.py").write_text('"""Downstream helpers."""\n\nPOOL = 32\n')
    git(fork, "add", "-A")
    git(fork, "commit", "-q", "-m", "downstream edits")
    helpers = fork / TORCH_MPS
    helpers.write_text(helpers.read_text().replace("MPS backend helpers.", "MPS backend helpers, pooled."))


def series_digests(scenario: Scenario) -> dict[str, str]:
    folder = scenario.project / "patches"
    return {p.name: sha(p) for p in sorted(folder.iterdir())}


def numstat(text: str) -> list[tuple[int, int, str]]:
    rows = [line.split("\t") for line in text.splitlines() if line]
    return sorted((int(added), int(removed), path) for added, removed, path in rows)


def test_import_refuses_a_fork_on_newer_upstream_then_imports_at_its_fork_point(single: Scenario,
                                                                                  tmp_path: Path) -> None:
    assert run_cli(single, "lock").returncode == 0
    fork = tmp_path / "fork"
    downstream_fork(single, fork, "v1.2")  # the fork tracks upstream past the locked base v1.0
    before = series_digests(single)
    assert "series.lock" in before

    refused = run_cli(single, "import", str(fork))
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert single.tags["v1.2"][:12] in refused.stderr and "(v1.2)" in refused.stderr
    assert "--base v1.2" in refused.stderr and "--base fork-point" in refused.stderr
    assert series_digests(single) == before  # the inflated patch is never written, nor the lock
    assert not (single.project / ".mpspatch" / "previous").exists()
    # regenerate --from takes the same diff and refuses alike
    assert run_cli(single, "regenerate", "--from", str(fork)).returncode == 2
    assert series_digests(single) == before

    code, data = cli_json(single, "import", str(fork), "--base", "fork-point")
    assert code == 0, data
    assert data["base"] == single.tags["v1.2"]
    downstream = git(fork, "diff", "--numstat", "--no-renames", "v1.2")
    assert numstat(downstream) == [(1, 0, STREAM_MM), (1, 1, TORCH_MPS), (3, 0, "torch/mps/extra.py")]
    assert numstat(git(fork, "apply", "--numstat", str(single.patches[0]))) == numstat(downstream)
    assert (data["files"], data["insertions"], data["deletions"]) == (3, 5, 1)
    assert single.patches[0].read_text() == git(fork, *PATCH_DIFF_ARGS, "v1.2")
    lock = (single.project / "patches" / "series.lock").read_text()
    assert single.tags["v1.2"] in lock and '"v1.2"' in lock
    # --base with the named point gives the same patch
    assert cli_json(single, "import", str(fork), "--base", "v1.2")[0] == 0
    assert single.patches[0].read_text() == git(fork, *PATCH_DIFF_ARGS, "v1.2")
    assert cli_json(single, "regenerate", "--from", str(fork), "--base", "fork-point", "--check")[0] == 0


def test_import_refuses_a_fork_that_merged_upstream_in(single: Scenario, tmp_path: Path) -> None:
    assert run_cli(single, "lock").returncode == 0
    fork = tmp_path / "fork"
    downstream_fork(single, fork, "v1.0")  # on the base: the check lets it through
    git(fork, "stash", "-q")
    assert cli_json(single, "import", str(fork))[0] == 0
    before = series_digests(single)
    git(fork, "merge", "-q", "--no-edit", "v1.2")  # a merge commit brings upstream commits in
    refused = run_cli(single, "import", str(fork))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert single.tags["v1.2"][:12] in refused.stderr and "--base v1.2" in refused.stderr
    assert series_digests(single) == before
    # An untagged upstream commit is named by its SHA, which is also what --base gets
    untagged = git(fork, "rev-parse", "v1.1~1").strip()
    git(fork, "reset", "-q", "--hard", "HEAD^")
    git(fork, "merge", "-q", "--no-edit", untagged)
    refused = run_cli(single, "import", str(fork))
    assert refused.returncode == 2 and f"--base {untagged[:12]}" in refused.stderr
    code, data = cli_json(single, "import", str(fork), "--base", "fork-point")
    assert code == 0 and data["base"] == untagged
    assert untagged in (single.project / "patches" / "series.lock").read_text()


def test_import_refuses_a_fork_older_than_the_base(single: Scenario, tmp_path: Path) -> None:
    assert run_cli(single, "lock", "--base", "v1.1").returncode == 0
    fork = tmp_path / "fork"
    downstream_fork(single, fork, "v1.0")  # `git diff v1.1` of it would revert v1.1's upstream changes
    before = series_digests(single)
    refused = run_cli(single, "import", str(fork))
    assert refused.returncode == 2 and "older than the base" in refused.stderr
    assert single.tags["v1.0"][:12] in refused.stderr and "--base v1.0" in refused.stderr
    assert series_digests(single) == before


def test_import_of_a_downstream_branch_in_the_clone_itself_is_not_refused(single: Scenario) -> None:
    # The user's clone doubles as the fork: its own branches are not upstream history.
    git(single.checkout, "checkout", "-q", "-b", "mps-stream-pool", "v1.0")
    git(single.checkout, "apply", "--index", str(single.patches[0]))
    git(single.checkout, "commit", "-q", "-m", "downstream")
    canonical = single.patches[0].read_bytes()
    single.patches[0].write_text("")
    code, data = cli_json(single, "import", str(single.checkout))
    assert code == 0, data
    assert single.patches[0].read_bytes() == canonical and data["base"] == single.tags["v1.0"]


def test_import_needs_to_for_several_patches_and_a_consistent_series(tmp_path: Path) -> None:
    two = build_scenario(tmp_path)
    result = run_cli(two, "import", str(two.patches[0]))
    assert result.returncode == 2 and "--to PATH" in result.stderr
    # The first patch put in place of the second: it clashes with the first patch itself.
    clash = run_cli(two, "import", str(two.patches[0]), "--to", str(two.patches[1]))
    assert clash.returncode == 2 and "series inconsistent" in clash.stderr
    assert two.patches[1].name in clash.stderr


# --------------------------------------------------------------------------------------------- regenerate


def test_regenerate_check_then_rewrite(single: Scenario) -> None:
    patch = single.patches[0]
    code, data = cli_json(single, "regenerate", "--check")
    assert code == 0 and data["in_sync"] is True
    canonical = patch.read_bytes()
    patch.write_text(abbreviate(canonical.decode()))
    drifted = patch.read_bytes()
    check = run_cli(single, "regenerate", "--check")
    assert check.returncode == 1
    assert "out of sync" in check.stdout and "(regenerated)" in check.stdout and "+index " in check.stdout
    assert patch.read_bytes() == drifted  # --check writes nothing
    code, data = cli_json(single, "regenerate")
    assert code == 0 and data["written"] == [str(patch)]
    assert patch.read_bytes() == canonical
    assert cli_json(single, "regenerate", "--check")[0] == 0


def test_regenerate_from_fork_and_refusal_during_rebase(single: Scenario, tmp_path: Path) -> None:
    fork = tmp_path / "fork"
    git(single.root, "clone", "-q", str(single.checkout), str(fork))
    git(fork, "checkout", "-q", "v1.0")
    git(fork, "apply", "--index", str(single.patches[0]))  # --index: the added header is tracked, so diffed
    assert cli_json(single, "regenerate", "--from", str(fork), "--check")[0] == 0
    (fork / "torch/mps/__init__.py").write_text((fork / "torch/mps/__init__.py").read_text() + "# more\n")
    code, data = cli_json(single, "regenerate", "--from", str(fork), "--check")
    assert code == 1 and data["patches"][0]["added"] >= 1
    assert cli_json(single, "regenerate", "--from", str(fork))[0] == 0
    assert "+# more" in single.patches[0].read_text()
    assert run_cli(single, "rebase", "--onto", "v1.3").returncode == 1
    busy = run_cli(single, "regenerate")
    assert busy.returncode == 2 and "rebase --continue" in busy.stderr


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 until `failures` requests have been refused, then the patch."""

    failures = 0
    seen = 0
    body = b""

    def do_GET(self) -> None:
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            self.send_error(503, "busy")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _flaky_server(failures: int, body: bytes) -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Handler", (_Flaky,), {"failures": failures, "seen": 0, "body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/p.patch", handler
    finally:
        server.shutdown()
        server.server_close()


def test_download_retries_a_busy_server_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(regenerate_module.time, "sleep", waits.append)
    with _flaky_server(2, b"diff --git a/x b/x\n") as (url, handler):
        assert regenerate_module.download(url) == b"diff --git a/x b/x\n"
    assert handler.seen == 3 and waits == [2.0, 4.0]


def test_download_gives_up_after_three_tries_and_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regenerate_module.time, "sleep", lambda _: None)
    with _flaky_server(10, b"") as (url, handler), pytest.raises(InputError) as caught:
        regenerate_module.download(url)
    assert handler.seen == 3
    assert caught.value.message.startswith(f"{url}: download failed with HTTP 503 busy after 3 tries; ")


def test_a_missing_file_is_not_retried_and_userinfo_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(regenerate_module.time, "sleep", waits.append)
    with _flaky_server(0, b"") as (url, _):
        secret_url = url.replace("http://", "http://user:sekret@")
        with pytest.raises(InputError) as caught:
            regenerate_module.download(secret_url)
    assert "sekret" not in caught.value.message and "user" not in caught.value.message
    assert regenerate_module.url_for_message(secret_url) == url
    waits.clear()
    with pytest.raises(InputError):
        regenerate_module.download("file:///nonexistent/p.patch")
    assert waits == []
