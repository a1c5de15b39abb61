""".ci/fetch-pytorch against a real throwaway upstream served over file://.

The upstream has a tag, a moving branch, an unrelated tag that must not be fetched, a commit named only by
SHA, and a submodule, so the script's partial clone, ref mapping, checkout and submodule paths all run for
real. Author, committer and dates are pinned, so the SHAs are stable between runs.

Stand-in: the retry test puts a `git` script first on PATH that fails the first two `git clone` calls with
exit 128 (what git exits with when the network drops) and runs the real git for everything else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "fetch-pytorch"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / "gitconfig"),
        GIT_AUTHOR_NAME="Upstream Dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="Upstream Dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
        GIT_AUTHOR_DATE="2025-11-12T10:00:00+00:00",
        GIT_COMMITTER_DATE="2025-11-12T10:00:00+00:00",
        # Submodules over file:// are off by default since git 2.38.1 (CVE-2022-39253); this test
        # serves everything from local paths on purpose.
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="protocol.file.allow",
        GIT_CONFIG_VALUE_0="always",
    )
    return env


def _run(
    argv: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _git(repo: Path, *args: str, env: dict[str, str]) -> str:
    result = _run(["git", "-C", repo, *args], env)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def _serve(repo: Path, env: dict[str, str]) -> None:
    # What github.com allows and a plain local repository does not: filtered clones and fetch by SHA.
    _git(repo, "config", "uploadpack.allowFilter", "true", env=env)
    _git(repo, "config", "uploadpack.allowAnySHA1InWant", "true", env=env)


def _commit(repo: Path, files: dict[str, str], message: str, env: dict[str, str]) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(repo, "add", "-A", env=env)
    _git(repo, "commit", "-q", "-m", message, env=env)
    return _git(repo, "rev-parse", "HEAD", env=env)


@dataclass(frozen=True)
class Upstream:
    url: str
    env: dict[str, str]
    base: str  # tagged v1.0
    viable: str  # tip of viable/strict
    newest: str  # tip of main, reachable by SHA only through main


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    sub = tmp_path / "sub"
    _git(tmp_path, "init", "-q", "-b", "main", str(sub), env=env)
    _commit(sub, {"sub.txt": "vendored\n"}, "sub: initial", env)
    _serve(sub, env)

    repo = tmp_path / "upstream"
    _git(tmp_path, "init", "-q", "-b", "main", str(repo), env=env)
    _serve(repo, env)
    _commit(repo, {"README": "old\n"}, "old", env)
    _git(repo, "tag", "v0.9", env=env)
    _git(repo, "submodule", "--quiet", "add", f"file://{sub}", "third_party/sub", env=env)
    base = _commit(repo, {"aten/src/ATen/mps/MPSStream.mm": "stream v1\n"}, "base", env)
    _git(repo, "tag", "v1.0", env=env)
    viable = _commit(repo, {"aten/src/ATen/mps/MPSStream.mm": "stream v2\n"}, "viable", env)
    _git(repo, "branch", "viable/strict", env=env)
    newest = _commit(repo, {"aten/src/ATen/mps/MPSStream.mm": "stream v3\n"}, "newest", env)
    return Upstream(url=f"file://{repo}", env=env, base=base, viable=viable, newest=newest)


def _fetch(up: Upstream, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run(["bash", SCRIPT, *args], up.env)


def test_new_clone_is_partial_sparse_and_has_every_named_ref(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "pytorch"
    result = _fetch(upstream, dest, upstream.url, "v1.0", "viable/strict", upstream.newest)
    assert result.returncode == 0, result.stderr
    env = upstream.env
    assert _git(dest, "rev-parse", "v1.0^{commit}", env=env) == upstream.base
    assert _git(dest, "rev-parse", "viable/strict", env=env) == upstream.viable
    assert _git(dest, "rev-parse", "origin/viable/strict", env=env) == upstream.viable
    assert _git(dest, "cat-file", "-t", upstream.newest, env=env) == "commit"
    assert _git(dest, "tag", "--list", env=env).split() == ["v1.0"], "only the named tag is fetched"
    assert _git(dest, "config", "remote.origin.partialclonefilter", env=env) == "blob:none"
    assert _git(dest, "config", "core.sparseCheckout", env=env) == "true"
    assert sorted(p.name for p in dest.iterdir()) == [".git"], "no checkout: the working tree stays empty"
    missing = _git(dest, "rev-list", "--objects", "--missing=print", "--all", env=env).splitlines()
    assert any(line.startswith("?") for line in missing), "blobs should stay on the server until needed"


def test_checkout_with_submodules_gives_a_full_buildable_tree(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "pytorch"
    first = _fetch(upstream, dest, upstream.url, "v1.0")
    assert first.returncode == 0, first.stderr
    # The second call reuses the clone, as a persistent self-hosted runner does.
    result = _fetch(
        upstream, "--checkout", "viable/strict", "--submodules", dest, upstream.url, "viable/strict"
    )
    assert result.returncode == 0, result.stderr
    assert "reusing the clone" in result.stderr
    assert _git(dest, "rev-parse", "HEAD", env=upstream.env) == upstream.viable
    assert (dest / "aten/src/ATen/mps/MPSStream.mm").read_text(encoding="utf-8") == "stream v2\n"
    assert (dest / "third_party/sub/sub.txt").read_text(encoding="utf-8") == "vendored\n"
    assert _git(dest, "config", "--bool", "core.sparseCheckout", env=upstream.env) == "false"


@pytest.mark.parametrize("ref", ["--upload-pack=touch pwned", "a..b", "main.lock", "x y", "refs//heads", ""])
def test_refuses_refs_that_are_not_plain_names(upstream: Upstream, tmp_path: Path, ref: str) -> None:
    result = _fetch(upstream, tmp_path / "pytorch", upstream.url, ref)
    assert result.returncode == 2
    assert "not a usable ref name" in result.stderr
    assert not (tmp_path / "pytorch").exists(), "nothing is cloned before the refs are checked"


def test_unknown_ref_is_bad_input(upstream: Upstream, tmp_path: Path) -> None:
    result = _fetch(upstream, tmp_path / "pytorch", upstream.url, "release/9.9")
    assert result.returncode == 2
    assert "has no branch or tag named 'release/9.9'" in result.stderr


def test_unreachable_remote_is_not_blamed_on_the_ref(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "pytorch"
    assert _fetch(upstream, dest, upstream.url, "v1.0").returncode == 0
    result = _fetch(upstream, dest, f"file://{tmp_path / 'gone'}", "viable/strict")
    assert result.returncode not in (0, 2)
    assert "cannot list refs" in result.stderr


def test_usage_errors_exit_2(upstream: Upstream, tmp_path: Path) -> None:
    assert _fetch(upstream, tmp_path / "pytorch", upstream.url).returncode == 2
    assert _fetch(upstream, "--bogus", tmp_path / "pytorch", upstream.url, "v1.0").returncode == 2
    lone = _fetch(upstream, "--submodules", tmp_path / "pytorch", upstream.url, "v1.0")
    assert lone.returncode == 2 and "--submodules needs --checkout" in lone.stderr


def test_a_flaky_clone_is_tried_again_with_backoff(upstream: Upstream, tmp_path: Path) -> None:
    import shutil

    real_git = shutil.which("git", path=upstream.env.get("PATH"))
    assert real_git is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    counter = tmp_path / "clones"
    stand_in = bindir / "git"
    stand_in.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = clone ]; then\n'
        f'  echo x >> "{counter}"\n'
        f'  if [ "$(wc -l < "{counter}")" -le 2 ]; then echo "fatal: the network dropped" >&2; exit 128; fi\n'
        "fi\n"
        f'exec "{real_git}" "$@"\n',
        encoding="utf-8",
    )
    stand_in.chmod(0o755)
    env = {**upstream.env, "PATH": f"{bindir}{os.pathsep}{upstream.env.get('PATH', '')}",
           "FETCH_PYTORCH_BACKOFF": "0"}
    result = _run(["bash", SCRIPT, tmp_path / "pytorch", upstream.url, "v1.0"], env)
    assert result.returncode == 0, result.stderr
    assert counter.read_text().count("x") == 3
    assert result.stderr.count("failed (git exit 128); trying again in 0s") == 2
    assert _git(tmp_path / "pytorch", "rev-parse", "v1.0^{commit}", env=upstream.env) == upstream.base


def test_retries_are_bounded_and_never_show_userinfo(upstream: Upstream, tmp_path: Path) -> None:
    env = {**upstream.env, "FETCH_PYTORCH_BACKOFF": "0"}
    remote = f"file://user:sekret@localhost{tmp_path / 'gone'}"
    result = _run(["bash", SCRIPT, tmp_path / "pytorch", remote, "v1.0"], env)
    assert result.returncode not in (0, 2)
    ours = [line for line in result.stderr.splitlines() if line.startswith("fetch-pytorch:")]
    assert len(ours) == 3, result.stderr
    assert ours[-1] == f"fetch-pytorch: file://localhost{tmp_path / 'gone'}: giving up after 3 tries (git exit 128)"
    assert not any("sekret" in line for line in ours)
