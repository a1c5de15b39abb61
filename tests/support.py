"""Test support: real throwaway git repositories with pinned identities, so commit SHAs are stable."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Upstream",
    "GIT_AUTHOR_EMAIL": "ada@example.invalid",
    "GIT_COMMITTER_NAME": "Ada Upstream",
    "GIT_COMMITTER_EMAIL": "ada@example.invalid",
}
BASE_EPOCH = 1_700_000_000  # 2023-11-14; each commit adds an hour so history order is unambiguous


def git_env(tick: int = 0) -> dict[str, str]:
    stamp = f"@{BASE_EPOCH + 3600 * tick} +0000"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(IDENTITY)
    env.update({"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp, "TZ": "UTC",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    return env


class Repo:
    """A git repository in a temporary folder, driven with the real git CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tick = 0

    @classmethod
    def create(cls, path: Path) -> Repo:
        path.mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.git("init", "-q", "-b", "main")
        repo.git("config", "core.autocrlf", "false")
        return repo

    def git(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        # Bytes, decoded by hand: text=True would turn CRLF into LF and hide what git really wrote.
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=git_env(self.tick), capture_output=True,
            input=input_text.encode() if input_text is not None else None, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n{result.stderr.decode()}")
        return result.stdout.decode("utf-8", errors="replace")

    def write(self, rel: str, content: str | bytes) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_bytes(content.encode())
        return target

    def commit(self, message: str, *, tag: str | None = None) -> str:
        self.tick += 1
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        if tag:
            self.git("tag", tag)
        return self.git("rev-parse", "HEAD").strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


def cpp_source(name: str, functions: int, *, variant: str = "") -> str:
    """A plausible ObjC++/C++ source body of our own: `functions` small functions under a namespace."""
    lines = ["// " + name, "#include <mutex>", "", "namespace at::mps {", ""]
    for i in range(functions):
        lines += [
            f"int {name.split('.')[0].lower()}_step_{i}(int value) {{",
            f"  // step {i}{variant}",
            f"  return value * {i + 2} + {i};",
            "}",
            "",
        ]
    lines.append("}  // namespace at::mps")
    return "\n".join(lines) + "\n"


def write_config(folder: Path, *, patches: list[str], checkout: str = "../upstream", base: str = "v1.0",
                 extra: str = "") -> Path:
    quoted = ", ".join(f'"{p}"' for p in patches)
    text = f"""
[upstream]
url = "https://example.invalid/upstream.git"
checkout = "{checkout}"
base = "{base}"
target = "main"

[series]
patches = [{quoted}]
allowed_paths = ["aten/src/ATen/mps/", "aten/src/ATen/native/mps/", "torch/mps/", "test/test_mps.py"]

[categories]
"Core MPS" = ["aten/src/ATen/mps/**"]
"Operations" = ["aten/src/ATen/native/mps/**"]
"Python bindings" = ["torch/mps/**"]
"Tests" = ["test/test_mps.py"]
{extra}
"""
    path = folder / "mpspatch.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pooled_stream_project(tmp_path: Path, extra: Mapping[str, str] | None = None) -> Path:
    """A project whose one patch pools MPSStream.mm (plus `extra` files) against an upstream tagged v1.0 at
    tmp_path/upstream; the patch is a real `git diff --full-index`."""
    upstream = Repo.create(tmp_path / "upstream")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 6))
    upstream.commit("base", tag="v1.0")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 8, variant=" pooled"))
    for path, text in (extra or {}).items():
        upstream.write(path, text)
    upstream.git("add", "-A")
    patch = upstream.git("diff", "--cached", "--full-index", "v1.0")
    upstream.git("reset", "-q", "--hard")
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "patches/pool.patch").write_text(patch)
    write_config(project, patches=["patches/pool.patch"])
    return project
