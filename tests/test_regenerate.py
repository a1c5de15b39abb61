"""`mpspatch import` and `mpspatch regenerate` on the shared scenarios, through the real CLI."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios import Scenario, build_scenario
from test_rebase import git, run_cli

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
    assert lock["base"] == single.tags["v1.0"] and lock["written_by"] == "mpspatch import"
    assert lock["patches"][0]["sha256"] == sha(patch)
    assert (single.project / ".mpspatch/previous" / patch.name).read_bytes() == canonical


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
