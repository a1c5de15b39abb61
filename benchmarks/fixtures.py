#!/usr/bin/env python3
"""Real-scale benchmark fixtures for mpspatch.

Builds, deterministically from a seed and without network access:

* a PyTorch-shaped upstream git repository (about 12,800 files) with the releases ``v2.9.1`` and
  ``v2.15.0``, upstream history between them that partly collides with the downstream patch, and a
  ``viable/strict`` branch at the newer release;
* a 13-file, 1,448-line slice patch against ``v2.9.1``, written as ``git diff --full-index`` output from a
  downstream commit that the upstream repository never sees;
* a 50-file, 7,608-line cumulative patch text shaped like the real MPS stream-pool patch, for ``stats``.

The file contents come from this module's own templates. Stdlib only, so the benchmarks run before
mpspatch is installed. Run ``python benchmarks/fixtures.py --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

# Bump whenever generated content changes, so cached fixtures are rebuilt.
GENERATOR_VERSION = 4
DEFAULT_SEED = 291
DEFAULT_FILES = 12_800
BASE_TAG = "v2.9.1"
TARGET_TAG = "v2.15.0"
TARGET_BRANCH = "viable/strict"
MAIN_BRANCH = "main"
PR_URL = "https://github.com/pytorch/pytorch/pull/"
ABSORBING_PR = 190375
SLICE_TOTAL_LINES = 1_448
CUMULATIVE_LINES = 7_608
CUMULATIVE_INSERTIONS = 4_173
CUMULATIVE_DELETIONS = 798
DEFAULT_ROOT = Path(__file__).resolve().parent / "_work" / "fixture"

MPS = "aten/src/ATen/mps/"
NMPS = "aten/src/ATen/native/mps/"
OPS = NMPS + "operations/"


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamCommit:
    """One upstream commit between the base and the target release, oldest first."""

    sha: str
    subject: str
    pull_request: int | None  # from the ``Pull Request resolved:`` trailer; None when absent
    paths: tuple[str, ...]  # every path the commit adds, modifies or deletes


@dataclass(frozen=True)
class ConflictExpectation:
    path: str
    regions: int


@dataclass(frozen=True)
class ExpectedDrift:
    """What the slice patch meets when it moves from BASE_TAG to TARGET_TAG, by design."""

    conflicts: tuple[ConflictExpectation, ...]
    absorbed: tuple[str, ...]  # every change the patch makes to these files is already upstream
    partly_absorbed: tuple[str, ...]  # some hunks already upstream, the rest merges cleanly
    clean: tuple[str, ...]  # patched files that upstream changed elsewhere; they merge cleanly
    absorbing_pull_request: int


@dataclass(frozen=True)
class UpstreamFixture:
    repo: Path
    base_tag: str
    target_tag: str
    target_branch: str
    base_commit: str
    target_commit: str
    main_commit: str
    files_at_base: int
    bytes_at_base: int
    commits: tuple[UpstreamCommit, ...]  # base..target, oldest first
    expected: ExpectedDrift


@dataclass(frozen=True)
class CategoryCount:
    name: str
    files: int
    insertions: int
    deletions: int


@dataclass(frozen=True)
class PatchFixture:
    path: Path
    files: tuple[str, ...]
    insertions: int
    deletions: int
    lines: int  # lines in the patch file itself
    downstream_commit: str | None = None  # the commit the slice was cut from (absent upstream)
    categories: tuple[CategoryCount, ...] = ()


@dataclass(frozen=True)
class FixtureSet:
    root: Path
    seed: int
    n_files: int
    generator_version: int
    upstream: UpstreamFixture
    slice_patch: PatchFixture
    cumulative_patch: PatchFixture
    build_seconds: float


# --------------------------------------------------------------------------------------------------
# Subprocesses: the only place this module starts a process
# --------------------------------------------------------------------------------------------------


class FixtureError(RuntimeError):
    """A git step failed; the message names the command and the tail of its output."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment that keeps the user's git config and inherited GIT_* variables out of the way."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_EDITOR": "true",
            "LC_ALL": "C",
            "TZ": "UTC",
        }
    )
    if extra:
        env.update(extra)
    return env


def identity_env(when: int, name: str = "Downstream Dev", email: str = "dev@example.com") -> dict[str, str]:
    """Pinned author and committer, so commits made from the same tree get the same SHA."""
    stamp = f"@{when} +0000"
    return git_env(
        {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": stamp,
        }
    )


def _tail(data: bytes, limit: int = 1500) -> str:
    return data.decode("utf-8", "replace")[-limit:].strip()


def run_git(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    ok: Container[int] = (0,),
    timeout: float = 600.0,
) -> subprocess.CompletedProcess[bytes]:
    """Run one git command; raise FixtureError unless its exit code is in ``ok``."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=dict(env) if env is not None else git_env(),
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode not in ok:
        raise FixtureError(
            f"git {' '.join(args)} (in {cwd}) exited {proc.returncode}: {_tail(proc.stderr + proc.stdout)}"
        )
    return proc


def feed_git(args: Sequence[str], cwd: Path, chunks: Iterable[bytes], *, timeout: float = 600.0) -> None:
    """Stream ``chunks`` into a git command, so Python generates while git compresses."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=git_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
            bufsize=1 << 20,
        )
        assert proc.stdin is not None
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # git died early; its exit code and stderr say why
        code = proc.wait(timeout=timeout)
        if code != 0:
            err.seek(0)
            raise FixtureError(f"git {' '.join(args)} (in {cwd}) exited {code}: {_tail(err.read())}")


def git_out(args: Sequence[str], cwd: Path) -> str:
    return run_git(args, cwd).stdout.decode().strip()


# --------------------------------------------------------------------------------------------------
# Source text generator (own templates; plausible, not compilable)
# --------------------------------------------------------------------------------------------------

Lang = Literal["hdr", "cpp", "objc", "py", "pytest", "yaml", "text", "sh"]

_NOUNS = (
    "tensor", "buffer", "stride", "shape", "kernel", "graph", "stream", "event", "queue", "encoder",
    "pipeline", "cache", "offset", "scale", "bias", "weight", "grad", "index", "mask", "input", "output",
    "scratch", "heap", "block", "chunk", "slot", "handle", "device", "context", "state", "plan", "tile",
    "lane", "group", "window", "counter", "limit", "result", "source", "target", "storage", "layout",
    "dtype", "numel", "rank", "axis", "step", "count",
)
_POOL_NOUNS = (
    "pool", "worker", "inflight", "fence", "completion", "submission", "lease", "thread", "serial",
    "owner", "epoch", "ticket", "stream", "slot",
)
_VERBS = (
    "compute", "resolve", "encode", "record", "flush", "prepare", "lookup", "reserve", "release",
    "update", "validate", "dispatch", "gather", "scatter", "reduce", "fill", "copy", "emit", "bind",
    "query", "commit", "wait", "merge", "split", "pack", "unpack", "sync", "normalize", "apply",
    "select", "acquire", "collect", "expand", "narrow",
)
_POOL_VERBS = ("acquire", "lease", "recycle", "drain", "fence", "signal", "rebind", "retire", "claim")
_ADJS = (
    "released", "committed", "reused", "visible", "flushed", "encoded", "ready", "stale", "valid",
    "pinned", "shared", "contiguous", "aligned", "pending",
)
_PREPS = ("before", "once", "after", "until", "while", "unless", "when")
_TYPES = (
    "int64_t", "size_t", "bool", "double", "uint32_t", "c10::DeviceIndex", "at::Tensor",
    "c10::ScalarType", "IntArrayRef",
)
_OBJC_TYPES = (*_TYPES, "id<MTLBuffer>", "MPSStream*", "id<MTLCommandBuffer>", "MPSGraphTensor*")

_CPP_STMTS = (
    "auto {a} = {b}.{f}();",
    "const int64_t {a} = {b}.size({n});",
    'TORCH_CHECK({a}.defined(), "{f}: expected a defined {bw}");',
    "{a} += {b} * {n};",
    "std::vector<int64_t> {a}({b}.sizes().begin(), {b}.sizes().end());",
    "c10::SmallVector<int64_t, {m}> {a};",
    "const auto {a} = static_cast<size_t>({b}.numel());",
    "{f}({a}, {b}, /*{cw}=*/{n});",
    "auto& {a} = {b}[{n}];",
    'TORCH_INTERNAL_ASSERT({a} >= 0, "{f}: negative {bw}");',
    "{a}.reserve({b}.size() + {n});",
    "{a} = std::max<int64_t>({a}, {b});",
    "// {s}",
    "{a}.emplace_back({b}, {n});",
    "const bool {a} = {b}.is_contiguous() && {c}.defined();",
    "at::Tensor {a} = at::empty_like({b});",
    "{a}.copy_({b}, /*non_blocking=*/{flag});",
    "std::lock_guard<std::mutex> {a}Lock({b}Mutex_);",
    "{a}.fill_({n});",
)
_CPP_SCOPES = (
    ("for (const auto {i} : c10::irange({a}.size())) {{", "}}"),
    ("if ({a}.numel() == 0) {{", "}}"),
    ("if (C10_UNLIKELY({a} > {n})) {{", "}}"),
    ("while ({a} < {b}) {{", "}}"),
)
_OBJC_STMTS = (
    *_CPP_STMTS,
    "id<MTLComputeCommandEncoder> {a} = [{b} computeCommandEncoder];",
    "[{a} setComputePipelineState:{b}PSO];",
    "[{a} setBuffer:{b} offset:{n} atIndex:{m}];",
    "[{a} dispatchThreads:MTLSizeMake({n}, 1, 1) threadsPerThreadgroup:MTLSizeMake({m}, 1, 1)];",
    "MPSGraphTensor* {a} = [mpsGraph {f}WithTensor:{b} name:nil];",
    "MTLSize {a} = MTLSizeMake({n}, {m}, 1);",
    "id<MTLBuffer> {a} = getMTLBufferStorage({b});",
    "[{a} endEncoding];",
    "mtl_setArgs({a}, {b}, {c});",
    "MPSStream* {a} = getCurrentMPSStream();",
)
_OBJC_SCOPES = (
    *_CPP_SCOPES,
    ("dispatch_sync({a}Queue, ^() {{", "}});"),
    ("@autoreleasepool {{", "}}"),
)
_PY_STMTS = (
    "{a} = {b}.{f}()",
    "{a} = {f}({b}, dim={n})",
    'assert {a} >= 0, "{f} expects a non-negative {bw}"',
    "{a}.append({b})",
    "{a} += {n}",
    "{a} = [x for x in {b} if x is not None]",
    "self.{a} = {b}",
    'torch._check({a}.dim() == {n}, lambda: "{f}: unexpected rank")',
    "# {s}",
    "{a} = torch.empty_like({b})",
    "{a}, {b} = {b}, {a}",
    '{a} = {b}.get("{cw}", {n})',
)
_PY_SCOPES = ("for {i} in range({a}):", "if {a} is None:", "with torch.no_grad():", "if {a} > {n}:")
_HDR_DECLS = (
    "{T} {f}() const;",
    "void {f}({T} {a});",
    "{T} {a}_{{{n}}};",
    "static {T} {f}({T} {a}, {T} {b});",
    "std::mutex {a}Mutex_;",
    "bool {f}(const at::Tensor& {a}) const;",
    "// {s}",
    "std::unordered_map<{T}, {T}> {a}_;",
    "{T} {a}_ = {n};",
    "[[nodiscard]] {T} {f}({T} {a}) const;",
)
_YAML_LINES = (
    "- func: {f}.{bw}(Tensor self, int dim={n}) -> Tensor",
    "  variants: function, method",
    "  dispatch:",
    "    MPS: {f}_mps",
    "    CPU, CUDA: {f}_{cw}",
    "  tags: pointwise",
    "  structured_delegate: {f}.out",
)
_CPP_SIGS = (
    "{T} @P@{F}(const at::Tensor& {a}, int64_t {b}) {{",
    "static void @P@{F}(const Tensor& {a}, const Tensor& {b}) {{",
    "Tensor& @P@{F}_out(const Tensor& {a}, const Scalar& {b}, Tensor& {c}) {{",
    "void @Q@::{f}({T} {a}) {{",
    "{T} @Q@::{f}({T} {a}, {T} {b}) const {{",
)


class _Code:
    """Plausible source lines in one of a few languages, drawn from a seeded RNG."""

    def __init__(self, rng: random.Random, flavor: Literal["base", "pool"] = "base") -> None:
        self.rng = rng
        self.nouns = _NOUNS + (_POOL_NOUNS * 3 if flavor == "pool" else ())
        self.verbs = _VERBS + (_POOL_VERBS * 3 if flavor == "pool" else ())

    def _word(self) -> str:
        return self.rng.choice(self.nouns)

    def camel(self) -> str:
        second = self._word()
        return self._word() + second[0].upper() + second[1:]

    def snake(self) -> str:
        return f"{self._word()}_{self._word()}"

    def fn(self, py: bool) -> str:
        noun = self._word()
        verb = self.rng.choice(self.verbs)
        return f"{verb}_{noun}" if py else verb + noun[0].upper() + noun[1:]

    def sentence(self) -> str:
        r = self.rng
        verb, prep, adj = r.choice(self.verbs).capitalize(), r.choice(_PREPS), r.choice(_ADJS)
        return f"{verb} the {self._word()} {prep} the {self._word()} is {adj}."

    def fields(self, py: bool, types: Sequence[str] = _TYPES) -> dict[str, str]:
        r = self.rng
        var = self.snake if py else self.camel
        name = self.fn(py)
        return {
            "a": var(),
            "b": var(),
            "c": var(),
            "f": name,
            "F": name[0].upper() + name[1:],
            "bw": self._word(),
            "cw": self._word(),
            "n": str(r.randint(0, 64)),
            "m": str(r.choice((2, 4, 8, 16, 32))),
            "i": r.choice(("i", "j", "k", "idx")),
            "T": r.choice(types),
            "s": self.sentence(),
            "flag": r.choice(("True", "False")) if py else r.choice(("true", "false")),
        }

    def stmt(self, lang: Lang) -> str:
        if lang == "yaml":
            return self.rng.choice(_YAML_LINES).format(**self.fields(True))
        if lang in ("text", "sh"):
            return self.sentence()
        if lang in ("py", "pytest"):
            return self.rng.choice(_PY_STMTS).format(**self.fields(True))
        if lang == "objc":
            return self.rng.choice(_OBJC_STMTS).format(**self.fields(False, _OBJC_TYPES))
        if lang == "hdr":
            return self.rng.choice(_HDR_DECLS).format(**self.fields(False))
        return self.rng.choice(_CPP_STMTS).format(**self.fields(False))

    def body(self, lang: Lang, n: int, pad: str, depth: int = 0) -> list[str]:
        """Exactly ``n`` statement lines indented by ``pad``, with some nested scopes."""
        py = lang in ("py", "pytest")
        unit = "    " if py else "  "
        need = 2 if py else 3  # scope header (+ closing line) + at least one inner line
        out: list[str] = []
        while len(out) < n:
            rem = n - len(out)
            if lang not in ("hdr", "yaml", "text", "sh") and depth < 2 and rem >= need and self.rng.random() < 0.22:
                inner = self.rng.randint(1, min(4, rem - need + 1))
                if py:
                    out.append(pad + self.rng.choice(_PY_SCOPES).format(**self.fields(True)))
                    block = self.body(lang, inner, pad + unit, depth + 1)
                    if all(line.lstrip().startswith("#") for line in block):
                        block[0] = pad + unit + "pass"  # a Python block needs one real statement
                    out += block
                else:
                    scopes = _OBJC_SCOPES if lang == "objc" else _CPP_SCOPES
                    head, close = self.rng.choice(scopes)
                    values = self.fields(False)
                    out.append(pad + head.format(**values))
                    out += self.body(lang, inner, pad + unit, depth + 1)
                    out.append(pad + close.format(**values))
            else:
                out.append(pad + self.stmt(lang))
        return out

    def function(
        self, lang: Lang, n: int, prefix: str = "@P@", cls: str = "@Q@", pad: str = "", flat: bool = False
    ) -> list[str]:
        """A whole function (or header declaration block, or YAML entry) of exactly ``n >= 3`` lines.

        ``flat`` bodies have no nested scopes, so any run of their lines can be replaced without
        unbalancing braces; the designed files use them because edits are aimed at line ranges.
        """
        depth = 2 if flat else 0
        n = max(n, 3)
        if lang == "hdr":
            return self._decl_block(n, cls)
        if lang == "yaml":
            return self._yaml_entry(n)
        if lang in ("text", "sh"):
            return [self.sentence() if lang == "text" else f"echo '{self.sentence()}'" for _ in range(n)]
        if lang in ("py", "pytest"):
            values = self.fields(True)
            test = lang == "pytest"
            name = f"test_{values['f']}" if test else f"{prefix}{values['f']}"
            args = "self" if test else f"{values['a']}, {values['b']}={values['n']}"
            head = [f"{pad}def {name}({args}):", f'{pad}    """{self.sentence()}"""']
            last = f"self.assertEqual({values['a']}, {values['b']})" if test else f"return {values['a']}"
            return [*head, *self.body(lang, n - 3, pad + "    ", depth), f"{pad}    {last}"]
        values = self.fields(False, _OBJC_TYPES if lang == "objc" else _TYPES)
        if not prefix:  # a free function named without a file prefix reads better in lowerCamel
            values["F"] = values["f"]
        sig = self.rng.choice(_CPP_SIGS).format(**values).replace("@P@", prefix).replace("@Q@", cls)
        return [pad + sig, *self.body(lang, n - 2, pad + "  ", depth), pad + "}"]

    def _decl_block(self, n: int, cls: str) -> list[str]:
        values = self.fields(False)
        kind = self.rng.choice(("class TORCH_API", "struct", "class"))
        lines = [f"{kind} {cls}{values['F']} {{"]
        inner = n - 2
        if kind.startswith("class") and inner >= 2:
            lines.append(" public:")
            inner -= 1
        lines += self.body("hdr", inner, "  ")
        lines.append("};")
        return lines

    def _yaml_entry(self, n: int) -> list[str]:
        v = self.fields(True)
        pool = [
            "  variants: function, method",
            "  structured_delegate: {f}.out".format(**v),
            "  dispatch:",
            f"    CPU: {v['f']}_cpu",
            f"    CUDA: {v['f']}_cuda",
            f"    MPS: {v['f']}_mps",
            "  tags: pointwise",
            "  autogen: {f}.out".format(**v),
            f"    CompositeExplicitAutograd: {v['f']}",
            "  device_check: NoCheck",
        ]
        lines = [f"- func: {v['f']}.{v['bw']}(Tensor self, int dim={v['n']}, *, bool {v['cw']}=False) -> Tensor"]
        while len(lines) < n:
            lines.append(pool[(len(lines) - 1) % len(pool)])
        return lines


# --------------------------------------------------------------------------------------------------
# Tree layout
# --------------------------------------------------------------------------------------------------


def _lang(path: str) -> Lang:
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    if ext in ("h", "cuh", "hpp"):
        return "hdr"
    if ext in ("cpp", "cu", "cc", "metal"):
        return "cpp"
    if ext == "mm":
        return "objc"
    if ext == "py":
        return "pytest" if name.startswith("test_") else "py"
    if ext == "yaml":
        return "yaml"
    if ext == "sh":
        return "sh"
    return "text"


def _namespace(path: str) -> str:
    rules = (
        ("c10/cuda", "c10::cuda"),
        ("c10/", "c10"),
        (NMPS, "at::native::mps"),
        ("aten/src/ATen/native/sparse/mps", "at::native"),
        ("aten/src/ATen/native", "at::native"),
        (MPS, "at::mps"),
        ("aten/src/ATen/cuda", "at::cuda"),
        ("torch/csrc/jit", "torch::jit"),
        ("torch/csrc/autograd", "torch::autograd"),
        ("torch/csrc/distributed", "c10d"),
        ("torch/csrc/api", "torch::nn"),
        ("torch/csrc/mps", "torch::mps"),
        ("torch/csrc", "torch"),
    )
    for prefix, ns in rules:
        if path.startswith(prefix):
            return ns
    return "at"


# (directory, extensions, weight, optional sub-directories). Weights are relative shares of the filler.
_LAYOUT: tuple[tuple[str, tuple[str, ...], int, tuple[str, ...]], ...] = (
    ("aten/src/ATen", ("h", "h", "cpp"), 30, ()),
    ("aten/src/ATen/core", ("h", "h", "cpp"), 35, ("boxing", "dispatch", "op_registration")),
    ("aten/src/ATen/native", ("cpp", "cpp", "h"), 55, ("", "", "utils")),
    ("aten/src/ATen/native/cpu", ("cpp", "h"), 30, ()),
    ("aten/src/ATen/native/cuda", ("cu", "cu", "cuh", "cpp"), 45, ("", "", "linalg")),
    ("aten/src/ATen/native/quantized", ("cpp", "h"), 20, ("cpu", "cuda", "cpu/kernels")),
    ("aten/src/ATen/native/sparse", ("cpp", "h"), 10, ("", "cuda")),
    ("aten/src/ATen/native/transformers", ("cpp", "h", "cu"), 8, ("", "cuda")),
    ("aten/src/ATen/native/nested", ("cpp", "h"), 6, ()),
    ("aten/src/ATen/cuda", ("h", "cpp", "cuh"), 15, ("", "detail")),
    ("aten/src/ATen/functorch", ("cpp", "h"), 10, ()),
    ("aten/src/ATen/test", ("cpp",), 10, ()),
    ("aten/src/ATen/cpu", ("h", "cpp"), 8, ("vec", "vec/vec256", "vec/vec512")),
    ("c10/core", ("h", "cpp"), 20, ("", "impl")),
    ("c10/util", ("h", "h", "cpp"), 30, ()),
    ("c10/cuda", ("h", "cpp"), 8, ("", "impl")),
    ("c10/macros", ("h",), 2, ()),
    ("c10/test", ("cpp",), 6, ("core", "util")),
    ("torch", ("py",), 8, ()),
    ("torch/_inductor", ("py",), 60, ("", "codegen", "fx_passes", "kernel", "runtime")),
    ("torch/_dynamo", ("py",), 45, ("", "variables", "backends", "repro")),
    ("torch/distributed", ("py",), 55, ("fsdp", "tensor", "pipelining", "elastic", "checkpoint", "_composable")),
    ("torch/nn", ("py",), 35, ("modules", "parallel", "utils", "attention")),
    ("torch/fx", ("py",), 20, ("", "passes", "experimental")),
    ("torch/utils", ("py",), 25, ("", "data", "benchmark", "_sympy")),
    ("torch/testing/_internal", ("py",), 20, ("", "distributed", "opinfo")),
    ("torch/_refs", ("py",), 6, ()),
    ("torch/_prims", ("py",), 5, ()),
    ("torch/onnx", ("py",), 18, ("_internal", "_internal/exporter")),
    ("torch/export", ("py",), 12, ()),
    ("torch/ao", ("py",), 30, ("quantization", "nn", "pruning")),
    ("torch/_functorch", ("py",), 12, ()),
    ("torch/optim", ("py",), 6, ()),
    ("torch/cuda", ("py",), 6, ()),
    ("torch/csrc", ("cpp", "h"), 25, ("utils", "profiler", "dynamo", "inductor")),
    ("torch/csrc/jit", ("cpp", "h"), 50, ("ir", "passes", "runtime", "frontend", "serialization", "mobile")),
    ("torch/csrc/autograd", ("cpp", "h"), 20, ("", "functions")),
    ("torch/csrc/distributed", ("cpp", "h"), 25, ("c10d", "rpc", "autograd")),
    ("torch/csrc/api", ("h", "cpp"), 30, ("include/torch/nn/modules", "include/torch/nn/options", "src/nn/modules")),
    ("test", ("py",), 50, ()),
    ("test/inductor", ("py",), 20, ()),
    ("test/distributed", ("py",), 25, ("", "fsdp", "tensor")),
    ("test/dynamo", ("py",), 15, ()),
    ("test/cpp/api", ("cpp",), 6, ()),
    ("test/cpp/jit", ("cpp",), 5, ()),
    ("tools", ("py",), 10, ("autograd", "codegen", "linter/adapters", "setup_helpers", "testing", "stats")),
    ("tools/autograd/templates", ("cpp", "h"), 3, ()),
    ("benchmarks", ("py",), 6, ("operator_benchmark", "dynamo")),
    ("docs/source", ("rst",), 8, ()),
    ("scripts", ("sh", "py"), 2, ()),
    (".github/workflows", ("yaml",), 3, ()),
)

_MPS_CORE = (
    "MPSAllocator.h", "MPSAllocator.mm", "MPSAllocatorInterface.h", "MPSDevice.h", "MPSDevice.mm",
    "MPSEvent.h", "MPSEvent.mm", "MPSGeneratorImpl.h", "MPSGeneratorImpl.mm", "MPSGuardImpl.h",
    "MPSGuardImpl.mm", "MPSHooks.h", "MPSHooks.mm", "MPSProfiler.h", "MPSProfiler.mm", "MPSStream.h",
    "MPSStream.mm", "EmptyTensor.cpp", "EmptyTensor.h", "IndexKernels.h", "MetalShaderLibrary.h",
)
_MPS_OPS = (
    "Activation", "AdaptiveAveragePooling", "AdaptiveMaxPooling", "Attention", "BinaryKernel",
    "BinaryOps", "Bitwise", "Blas", "Bucketization", "ConstantOps", "Convolution", "Copy", "CrossKernel",
    "Distributions", "Embedding", "Equal", "Eye", "FastFourierTransform", "FusedAdamKernel",
    "FusedSgdKernel", "Gamma", "GridSampler", "HistogramKernel", "Im2Col", "Indexing", "Inverse", "Lerp",
    "Linear", "LinearAlgebra", "LossOps", "Normalization", "Pad", "PixelShuffle", "PointwiseOps",
    "Pooling", "Quantized", "RangeFactories", "Reduction", "Repeat", "RnnOps", "Scalar", "ScatterGather",
    "Shape", "SoftMax", "Sort", "SummaryOps", "TensorCompare", "TriangularOps", "UnaryKernel", "UnaryOps",
    "Unique", "UpSample", "View", "WeightNorm",
)

# Named files that always exist, with a block count for the generic generator (None: pick one).
_NAMED: dict[str, int | None] = {
    **{MPS + name: None for name in _MPS_CORE},
    **{OPS + name + ".mm": None for name in _MPS_OPS},
    **{
        NMPS + name: None
        for name in (
            "OperationUtils.h", "OperationUtils.mm", "MPSGraphSequoiaOps.h", "MPSGraphSonomaOps.h",
            "MPSGraphVenturaOps.h", "TensorFactory.h", "Copy.h", "kernels/ActivationKernel.metal",
            "kernels/BinaryKernel.metal", "kernels/Indexing.metal", "kernels/UnaryKernel.metal",
            "kernels/Quantized.metal", "kernels/LinearAlgebra.metal",
        )
    },
    "aten/src/ATen/native/sparse/mps/SparseMPSTensor.mm": None,
    "aten/src/ATen/native/sparse/mps/SparseMPSTensorMath.mm": None,
    "aten/src/ATen/native/sparse/mps/FlattenIndices.mm": None,
    "aten/src/ATen/detail/MPSHooksInterface.h": None,
    "aten/src/ATen/detail/MPSHooksInterface.cpp": None,
    "aten/src/ATen/native/native_functions.yaml": 1100,
    "tools/autograd/derivatives.yaml": 450,
    "torch/csrc/mps/Module.cpp": 24,
    "torch/csrc/mps/Module.h": None,
    "torch/mps/__init__.py": 20,
    "torch/mps/profiler.py": None,
    "torch/mps/event.py": None,
    "torch/backends/mps/__init__.py": None,
    "test/test_mps.py": 140,
    "test/test_metal.py": None,
    "CMakeLists.txt": None,
    "setup.py": None,
    "README.md": None,
}

# The slice patch's files that exist at the base; they are built as blocks so edits can be aimed.
_DESIGNED: dict[str, int] = {
    MPS + "MPSStream.h": 14,
    MPS + "MPSStream.mm": 24,
    MPS + "MPSAllocator.h": 16,
    MPS + "MPSAllocator.mm": 40,
    MPS + "MPSGuardImpl.h": 12,
    MPS + "MPSEvent.mm": 14,
    MPS + "MPSHooks.mm": 16,
    NMPS + "OperationUtils.h": 20,
    NMPS + "OperationUtils.mm": 30,
    OPS + "Linear.mm": 12,
    OPS + "Normalization.mm": 18,
    OPS + "BinaryOps.mm": 16,
}
NEW_FILE = MPS + "MPSStreamPool.h"
SLICE_PATHS = tuple(sorted([*_DESIGNED, NEW_FILE]))


def _stem_words(rng: random.Random, lo: int, hi: int) -> list[str]:
    return [rng.choice(_NOUNS + _VERBS) for _ in range(rng.randint(lo, hi))]


def _new_filler_path(rng: random.Random, taken: set[str]) -> str:
    weights = [w for _, _, w, _ in _LAYOUT]
    while True:
        base, exts, _, subdirs = rng.choices(_LAYOUT, weights)[0]
        sub = rng.choice(subdirs) if subdirs else ""
        folder = f"{base}/{sub}" if sub else base
        ext = rng.choice(exts)
        words = _stem_words(rng, 1, 3)
        if ext == "py":
            name = "_".join(words)
            if folder.startswith("test"):
                name = "test_" + name
        elif ext == "sh":
            name = "_".join(words)
        elif ext == "rst":
            name = "-".join(words)
        else:
            name = "".join(w.capitalize() for w in words)
        path = f"{folder}/{name}.{ext}"
        if path not in taken:
            taken.add(path)
            return path


def _layout(n_files: int, seed: int) -> tuple[list[str], list[str]]:
    """(named paths, filler paths); together exactly ``n_files`` paths."""
    named = sorted(_NAMED)
    minimum = len(named) + 50
    if n_files < minimum:
        raise ValueError(f"n_files must be at least {minimum}, got {n_files}")
    rng = random.Random(f"{seed}/layout")
    taken = set(named)
    filler = [_new_filler_path(rng, taken) for _ in range(n_files - len(named))]
    return named, filler


# --------------------------------------------------------------------------------------------------
# Generic file contents (pooled blocks, so 12k files generate in well under a second)
# --------------------------------------------------------------------------------------------------

_INCLUDES = (
    "<ATen/core/Tensor.h>", "<ATen/Dispatch.h>", "<ATen/TensorUtils.h>", "<c10/util/Exception.h>",
    "<c10/util/irange.h>", "<c10/core/ScalarType.h>", "<c10/util/SmallVector.h>", "<mutex>", "<vector>",
    "<unordered_map>", "<atomic>", "<memory>", "<torch/csrc/utils/pybind.h>", "<ATen/native/TensorIterator.h>",
)
_PY_IMPORTS = (
    "import functools", "import itertools", "import logging", "import os", "import torch",
    "from typing import Any, Optional", "from collections.abc import Callable, Sequence",
    "import torch.nn.functional as F", "from torch import Tensor", "import contextlib",
)


class _Pools:
    """Per-language pools of generated blocks; a file is a few pooled blocks under its own names."""

    SIZE = 160

    def __init__(self, seed: int) -> None:
        self.blocks: dict[Lang, list[str]] = {}
        for lang in ("hdr", "cpp", "objc", "py", "pytest", "yaml", "text", "sh"):
            code = _Code(random.Random(f"{seed}/pool/{lang}"))
            self.blocks[lang] = [self._block(code, lang) for _ in range(self.SIZE)]

    @staticmethod
    def _block(code: _Code, lang: Lang) -> str:
        r = code.rng
        if lang in ("text", "sh"):
            return "\n".join(code.function(lang, r.randint(2, 8)))
        if lang == "yaml":
            return "\n".join(code.function(lang, r.randint(4, 9)))
        if lang == "pytest":
            name = code.fn(False)
            head = f"class Test@Q@{name[0].upper()}{name[1:]}(TestCase):"
            methods = ["\n".join(code.function(lang, r.randint(6, 22), pad="    ")) for _ in range(r.randint(1, 4))]
            return head + "\n" + "\n\n".join(methods)
        if lang == "py" and r.random() < 0.3:
            name = code.fn(False)
            head = f"class @Q@{name[0].upper()}{name[1:]}:"
            methods = [
                "\n".join(code.function(lang, r.randint(5, 18), prefix="", pad="    ")) for _ in range(r.randint(2, 4))
            ]
            return head + "\n" + "\n\n".join(methods)
        return "\n".join(code.function(lang, r.randint(6, 34)))


def _camel_stem(path: str) -> str:
    stem = path.rsplit("/", 1)[-1].split(".", 1)[0]
    parts = [p for p in stem.replace("-", "_").split("_") if p]
    joined = "".join(p[0].upper() + p[1:] for p in parts) or "File"
    return joined


def _preamble(path: str, lang: Lang, rng: random.Random) -> tuple[str, str, str]:
    """(head, block separator, tail) for a generic file."""
    includes = "\n".join(f"#include {inc}" for inc in sorted(rng.sample(_INCLUDES, rng.randint(2, 6))))
    ns = _namespace(path)
    if lang == "hdr":
        return f"#pragma once\n\n{includes}\n\nnamespace {ns} {{\n\n", "\n\n", f"\n\n}} // namespace {ns}\n"
    if lang in ("cpp", "objc"):
        own = path.rsplit(".", 1)[0].replace("aten/src/", "") + ".h"
        extra = "\n#import <Metal/Metal.h>\n#include <ATen/native/mps/OperationUtils.h>" if lang == "objc" else ""
        return f"#include <{own}>\n{includes}{extra}\n\nnamespace {ns} {{\n\n", "\n\n", f"\n\n}} // namespace {ns}\n"
    if lang in ("py", "pytest"):
        imports = "\n".join(sorted(rng.sample(_PY_IMPORTS, rng.randint(2, 5))))
        doc = _Code(rng).sentence()
        if lang == "pytest":
            head = f'# Owner(s): ["module: {path.split("/")[-1][5:-3] or "core"}"]\n\n{imports}\n'
            head += "from torch.testing._internal.common_utils import TestCase, run_tests\n\n\n"
            return head, "\n\n\n", '\n\n\nif __name__ == "__main__":\n    run_tests()\n'
        return f'"""{doc}"""\n\nfrom __future__ import annotations\n\n{imports}\n\n\n', "\n\n\n", "\n"
    if lang == "yaml":
        return f"# {_Code(rng).sentence()}\n\n", "\n\n", "\n"
    if lang == "sh":
        return "#!/bin/bash\nset -euo pipefail\n\n", "\n", "\n"
    return f"{_Code(rng).sentence()}\n\n", "\n\n", "\n"


def _generic_text(path: str, seed: int, pools: _Pools, blocks: int | None = None) -> str:
    rng = random.Random(f"{seed}/file/{path}")
    lang = _lang(path)
    count = blocks if blocks is not None else 1 + min(48, int(rng.expovariate(1 / 6.0)))
    pool = pools.blocks[lang]
    head, sep, tail = _preamble(path, lang, rng)
    body = sep.join(pool[rng.randrange(len(pool))] for _ in range(count))
    stem = _camel_stem(path)
    lower = stem[0].lower() + stem[1:]
    prefix = f"{path.rsplit('/', 1)[-1].split('.', 1)[0].lower()}_" if lang in ("py", "pytest") else lower
    return (head + body + tail).replace("@P@", prefix).replace("@Q@", stem)


def _generic_edit(text: str, rng: random.Random, lang: Lang) -> str:
    """Replace a few lines in the middle of ``text`` with new ones, keeping the local indentation."""
    lines = text.split("\n")
    code = _Code(rng)
    at = rng.randint(len(lines) // 4, max(len(lines) // 4, (3 * len(lines)) // 4 - 1))
    if lang == "yaml":
        entry = code.function("yaml", rng.randint(4, 8))
        while at < len(lines) - 1 and not lines[at].startswith("- "):
            at += 1
        lines[at:at] = [*entry, ""]
        return "\n".join(lines)
    if lang in ("text", "sh"):
        lines[at:at] = code.function(lang, rng.randint(2, 5))
        return "\n".join(lines)
    while at < len(lines) - 1 and not lines[at].startswith((" ", "\t")):
        at += 1  # land inside a body so the new statements look at home
    pad = lines[at][: len(lines[at]) - len(lines[at].lstrip())] or ("    " if lang in ("py", "pytest") else "  ")
    # Drop only plain statements, never a line that opens or closes a scope (Python: never drop).
    remove, want = 0, (0 if lang in ("py", "pytest") else rng.randint(0, 3))
    while remove < want and at + remove < len(lines) - 1 and _plain_statement(lines[at + remove]):
        remove += 1
    lines[at : at + remove] = code.body(lang, rng.randint(2, 10), pad)
    return "\n".join(lines)


def _plain_statement(line: str) -> bool:
    text = line.strip()
    return text.endswith(";") and "{" not in text and "}" not in text


# --------------------------------------------------------------------------------------------------
# Designed files: block models with aimed edits (the slice patch, and upstream work that meets it)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    key: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Model:
    head: tuple[str, ...]
    blocks: tuple[_Block, ...]
    tail: tuple[str, ...]

    def render(self) -> str:
        out = list(self.head)
        for block in self.blocks:
            out.append("")
            out.extend(block.lines)
        out.append("")
        out.extend(self.tail)
        return "\n".join(out) + "\n"


@dataclass(frozen=True)
class _Edit:
    block: str
    start: int
    remove: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Insert:
    after: str
    key: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Delete:
    block: str


_Op = _Edit | _Insert | _Delete


@dataclass(frozen=True)
class _Spec:
    """An edit aimed at base block ``block``: ``edit`` lines, ``insert`` a new block after it, ``delete``
    it, or ``same`` as the patch's op number ``block`` (upstream landing exactly the downstream hunk)."""

    kind: Literal["edit", "insert", "delete", "same"]
    block: int
    start: int = 0
    remove: int = 0
    add: int = 0


def _e(block: int, start: int, remove: int, add: int) -> _Spec:
    return _Spec("edit", block, start, remove, add)


def _i(after: int, add: int) -> _Spec:
    return _Spec("insert", after, add=add)


def _d(block: int) -> _Spec:
    return _Spec("delete", block)


def _same(patch_op: int) -> _Spec:
    return _Spec("same", patch_op)


# The downstream slice: per file, edits against the base blocks. Sizes roughly follow the real patch.
_PATCH_PLAN: dict[str, tuple[_Spec, ...]] = {
    MPS + "MPSStream.h": (_e(1, 2, 6, 20), _i(3, 60), _e(6, 1, 8, 30), _i(9, 50), _d(11), _e(12, 2, 4, 20)),
    MPS + "MPSStream.mm": (
        _e(2, 1, 4, 14), _e(5, 3, 6, 24), _i(6, 55), _i(8, 45), _e(10, 2, 10, 30), _d(12),
        _e(15, 2, 8, 26), _i(17, 60), _e(19, 1, 6, 12),
    ),
    MPS + "MPSAllocator.h": (_e(2, 1, 3, 10), _i(7, 22), _e(11, 2, 5, 8)),
    MPS + "MPSAllocator.mm": (_e(3, 2, 8, 30), _i(10, 40), _e(18, 1, 12, 25), _i(25, 25), _d(30)),
    MPS + "MPSGuardImpl.h": (_e(3, 2, 6, 20), _i(7, 25)),
    MPS + "MPSEvent.mm": (_e(6, 2, 4, 14),),
    MPS + "MPSHooks.mm": (_e(4, 2, 2, 10), _e(11, 1, 4, 20)),
    NMPS + "OperationUtils.h": (_e(5, 1, 4, 15), _i(12, 22), _e(16, 2, 6, 6)),
    NMPS + "OperationUtils.mm": (_e(2, 2, 10, 28), _i(9, 35), _e(14, 1, 8, 12), _e(20, 3, 7, 15)),
    OPS + "Linear.mm": (_e(2, 2, 9, 25), _e(6, 1, 6, 15)),
    OPS + "Normalization.mm": (_e(4, 2, 8, 20), _i(10, 30), _e(13, 2, 8, 12)),
    OPS + "BinaryOps.mm": (_e(3, 2, 6, 18), _i(8, 15)),
}


@dataclass(frozen=True)
class _Designed:
    """An upstream commit aimed at the patch; ``generic`` files get an unaimed edit."""

    position: int
    subject: str
    with_pr: bool
    ops: tuple[tuple[str, tuple[_Spec, ...]], ...]
    generic: tuple[str, ...] = ()


UPSTREAM_COMMITS_BETWEEN = 45
_DESIGNED_COMMITS: tuple[_Designed, ...] = (
    _Designed(3, "[MPS] Tidy heap accounting in the allocator", True, ((MPS + "MPSAllocator.mm", (_e(35, 2, 4, 8),)),)),
    _Designed(7, "[MPS] Fix command buffer ordering on commit", True, ((MPS + "MPSStream.mm", (_e(5, 4, 3, 5),)),)),
    _Designed(11, "[MPS] Speed up layer norm backward", True, ((OPS + "Normalization.mm", (_e(13, 5, 2, 4),)),)),
    _Designed(
        14, "[MPS] Reuse cached graphs for scalar inputs", True, ((NMPS + "OperationUtils.mm", (_e(26, 2, 5, 9),)),)
    ),
    # Landed without the merge bot, so it carries no "Pull Request resolved" trailer.
    _Designed(
        18, "[MPS] Validate the device index in the guard", False, ((MPS + "MPSGuardImpl.h", (_e(3, 3, 2, 3),)),)
    ),
    _Designed(22, "[MPS] Avoid a redundant encoder when flushing", True, ((MPS + "MPSStream.mm", (_e(15, 3, 2, 4),)),)),
    _Designed(
        25,
        "[MPS] Handle empty bias in linear and binary ops",
        True,
        ((OPS + "Linear.mm", (_e(9, 2, 4, 6),)), (OPS + "BinaryOps.mm", (_e(12, 2, 3, 6),))),
    ),
    _Designed(
        28,
        "[MPS] Stream header and teardown cleanup",
        True,
        ((MPS + "MPSStream.h", (_e(13, 3, 2, 5),)), (MPS + "MPSStream.mm", (_e(21, 2, 3, 6),))),
    ),
    _Designed(31, "[MPS] Shrink cached heaps under memory pressure", True, ((MPS + "MPSAllocator.mm", (_i(38, 20),)),)),
    _Designed(33, "[MPS] Report the registry id of the device", True, (), (MPS + "MPSDevice.mm",)),
    _Designed(
        36,
        "[MPS] Add a 32-stream pool with Python bindings",
        True,
        ((MPS + "MPSEvent.mm", (_same(0),)), (MPS + "MPSHooks.mm", (_same(0),))),
        ("torch/csrc/mps/Module.cpp", "torch/mps/__init__.py"),
    ),
    _Designed(39, "[MPS] Add scalar helpers to OperationUtils", True, ((NMPS + "OperationUtils.mm", (_i(27, 30),)),)),
    _Designed(41, "[MPS] Faster strided copies", True, (), (OPS + "Copy.mm",)),
)
_ABSORBING_POSITION = 36

EXPECTED_DRIFT = ExpectedDrift(
    conflicts=(
        ConflictExpectation(MPS + "MPSGuardImpl.h", 1),
        ConflictExpectation(MPS + "MPSStream.mm", 2),
        ConflictExpectation(OPS + "Normalization.mm", 1),
    ),
    absorbed=(MPS + "MPSEvent.mm",),
    partly_absorbed=(MPS + "MPSHooks.mm",),
    clean=(
        MPS + "MPSAllocator.mm",
        MPS + "MPSStream.h",
        NMPS + "OperationUtils.mm",
        OPS + "BinaryOps.mm",
        OPS + "Linear.mm",
    ),
    absorbing_pull_request=ABSORBING_PR,
)


def _designed_model(path: str, seed: int) -> _Model:
    rng = random.Random(f"{seed}/designed/{path}")
    code = _Code(rng)
    lang = _lang(path)
    stem = _camel_stem(path)
    ns = _namespace(path)
    comment = f"//  {code.sentence()}"
    head: tuple[str, ...]
    if lang == "hdr":
        includes = ("#include <ATen/mps/MPSDevice.h>", "#include <c10/core/Stream.h>", "#include <mutex>")
        head = (comment, "#pragma once", "", *includes, "", f"namespace {ns} {{")
    else:
        own = path.replace("aten/src/", "").rsplit(".", 1)[0] + ".h"
        includes = (f"#include <{own}>", "#include <ATen/mps/MPSProfiler.h>", "#include <c10/util/Logging.h>")
        head = (comment, *includes, "#import <Metal/Metal.h>", "", f"namespace {ns} {{")
    blocks = tuple(
        _Block(f"b{i}", tuple(code.function(lang, rng.randint(16, 40), prefix="", cls=stem, flat=True)))
        for i in range(_DESIGNED[path])
    )
    return _Model(head, blocks, (f"}} // namespace {ns}",))


def _resolve(path: str, specs: Sequence[_Spec], side: str, seed: int, model: _Model) -> list[_Op]:
    """Turn aimed specs into concrete ops with generated lines; ``side`` keys the RNG."""
    lang = _lang(path)
    stem = _camel_stem(path)
    ops: list[_Op] = []
    for j, spec in enumerate(specs):
        if spec.kind == "same":
            patch_ops = _resolve(path, _PATCH_PLAN[path], "patch", seed, model)
            ops.append(patch_ops[spec.block])
            continue
        key = f"b{spec.block}"
        block = model.blocks[spec.block]
        code = _Code(random.Random(f"{seed}/{side}/{path}/{j}"), "pool" if side == "patch" else "base")
        if spec.kind == "edit":
            # Keep the signature and the closing line so the block stays a block.
            if spec.start < 1 or spec.start + spec.remove > len(block.lines) - 1:
                raise ValueError(f"edit {spec} does not fit block {key} of {path}")
            ops.append(_Edit(key, spec.start, spec.remove, tuple(code.body(lang, spec.add, "  "))))
        elif spec.kind == "insert":
            ops.append(_Insert(key, f"{side}{j}", tuple(code.function(lang, spec.add, prefix="", cls=stem))))
        else:
            ops.append(_Delete(key))
    return ops


def _apply(model: _Model, ops: Iterable[_Op]) -> _Model:
    edits: dict[str, list[_Edit]] = {}
    inserts: dict[str, list[_Insert]] = {}
    deleted: set[str] = set()
    for op in ops:
        if isinstance(op, _Edit):
            edits.setdefault(op.block, []).append(op)
        elif isinstance(op, _Insert):
            inserts.setdefault(op.after, []).append(op)
        else:
            deleted.add(op.block)
    out: list[_Block] = []
    for block in model.blocks:
        if block.key not in deleted:
            lines = list(block.lines)
            for edit in sorted(edits.get(block.key, []), key=lambda e: e.start, reverse=True):
                lines[edit.start : edit.start + edit.remove] = edit.lines
            out.append(_Block(block.key, tuple(lines)))
        out.extend(_Block(ins.key, ins.lines) for ins in inserts.get(block.key, []))
    return _Model(model.head, tuple(out), model.tail)


def _new_file_text(seed: int, n_lines: int) -> str:
    """The patch's new header, exactly ``n_lines`` long."""
    code = _Code(random.Random(f"{seed}/newfile"), "pool")
    head = ["//  A pool of MPS streams so that several threads can encode work at once.", "#pragma once", "",
            "#include <ATen/mps/MPSStream.h>", "#include <array>", "#include <atomic>", "#include <mutex>", "",
            "namespace at::mps {", ""]
    tail = ["", "} // namespace at::mps"]
    room = n_lines - len(head) - len(tail)
    if room < 3:
        raise ValueError(f"new file needs at least {len(head) + len(tail) + 3} lines, got {n_lines}")
    body: list[str] = []
    while room > 0:
        size = room if room < 40 else code.rng.randint(12, 30)
        if body:
            body.append("")
            room -= 1
            size = min(size, room)
        if size < 3:  # too small for a block: pad with comments instead
            body += [f"// {code.sentence()}" for _ in range(size)]
            room -= size
            continue
        body += code.function("hdr", size, cls="MPSStreamPool")
        room -= size
    return "\n".join([*head, *body, *tail]) + "\n"


# --------------------------------------------------------------------------------------------------
# Upstream history and the fast-import stream
# --------------------------------------------------------------------------------------------------

_AUTHORS = (
    ("Mara Quill", "mquill"), ("Tobias Renn", "trenn"), ("Ines Okafor", "iokafor"), ("Kenji Aldous", "kaldous"),
    ("Priya Velan", "pvelan"), ("Lucas Ferreira-Moss", "lfmoss"), ("Hana Ostrova", "hostrova"),
    ("Dmitri Kael", "dkael"),
)
_MERGEBOT = ("PyTorch MergeBot", "pytorchmergebot@users.noreply.github.com")
_RELEASER = ("PyTorch Release Engineering", "release@example.com")
_ROOT_TS = 1_757_000_000
_DAY = 86_400
_AREAS = (
    ("aten/src/ATen/native/cuda", "CUDA"), ("aten/src/ATen/native/quantized", "quant"), ("aten/", "ATen"),
    ("c10/", "c10"), ("torch/_inductor", "inductor"), ("torch/_dynamo", "dynamo"), ("torch/distributed", "distributed"),
    ("torch/csrc/jit", "jit"), ("torch/onnx", "ONNX"), ("torch/export", "export"), ("torch/ao", "AO"),
    ("torch/fx", "fx"), ("torch/nn", "nn"), ("torch/csrc", "C++"), ("torch/", "Core"), ("test/", "tests"),
    ("tools/", "BE"), ("docs/", "docs"), (".github/", "CI"), ("benchmarks/", "benchmarks"), ("scripts/", "BE"),
)


@dataclass(frozen=True)
class _Planned:
    subject: str
    body: str
    pull_request: int | None
    author: int
    when: int
    changes: tuple[tuple[str, str | None], ...]  # path -> new text, or None to delete


def _area(path: str) -> str:
    for prefix, area in _AREAS:
        if path.startswith(prefix):
            return area
    return "Core"


def _message(subject: str, body: str, pr: int | None, approver: str) -> str:
    title = f"{subject} (#{pr})" if pr is not None else subject
    text = f"{title}\n\n{body}\n"
    if pr is not None:
        text += f"\nPull Request resolved: {PR_URL}{pr}\nApproved by: https://github.com/{approver}\n"
    return text


class _History:
    """Plans every commit (contents included) before anything is streamed to git."""

    def __init__(self, seed: int, named: Sequence[str], filler: Sequence[str], pools: _Pools) -> None:
        self.seed = seed
        self.pools = pools
        self.filler = list(filler)  # generic files that ordinary upstream commits may touch
        self.alive = {*named, *filler}
        self.taken = set(self.alive)  # every path ever used, so new files never reuse a name
        self.rng = random.Random(f"{seed}/history")
        self.current: dict[str, str] = {}  # path -> text, for every path changed after the root commit
        self.models = {path: _designed_model(path, seed) for path in _DESIGNED}
        self.up_ops: dict[str, list[_Op]] = {path: [] for path in _DESIGNED}
        self.used_prs: set[int] = {ABSORBING_PR}

    def base_text(self, path: str) -> str:
        if path in self.models:
            return self.models[path].render()
        return _generic_text(path, self.seed, self.pools, _NAMED.get(path))

    def text(self, path: str) -> str:
        return self.current[path] if path in self.current else self.base_text(path)

    def _pull_request(self) -> int:
        while True:
            number = self.rng.randint(165_000, 189_000)
            if number not in self.used_prs:
                self.used_prs.add(number)
                return number

    def _commit(
        self, subject: str, body: str, pr: int | None, when: int, changes: Mapping[str, str | None]
    ) -> tuple[_Planned, dict[str, str | None]]:
        """Record ``changes`` and return the commit plus each path's previous text (None: absent)."""
        previous = {path: (self.text(path) if path in self.alive else None) for path in changes}
        for path, text in changes.items():
            if text is None:
                self.alive.discard(path)
                self.current.pop(path, None)
                if path in self.filler:
                    self.filler.remove(path)
            else:
                if path not in self.alive and path not in _NAMED:
                    self.filler.append(path)
                self.alive.add(path)
                self.current[path] = text
        planned = _Planned(subject, body, pr, self.rng.randrange(len(_AUTHORS)), when, tuple(sorted(changes.items())))
        return planned, previous

    def _generic(self, when: int) -> tuple[_Planned, dict[str, str | None]]:
        rng = self.rng
        changes: dict[str, str | None] = {}
        for _ in range(rng.randint(1, 5)):
            path = rng.choice(self.filler)
            if path not in changes:
                edit_rng = random.Random(f"{self.seed}/gen/{when}/{path}")
                changes[path] = _generic_edit(self.text(path), edit_rng, _lang(path))
        if rng.random() < 0.25:
            path = _new_filler_path(rng, self.taken)
            changes[path] = _generic_text(path, self.seed, self.pools)
        if rng.random() < 0.08:
            victim = rng.choice(self.filler)
            if victim not in changes:
                changes[victim] = None
        code = _Code(rng)
        noun = rng.choice(("handling", "path", "support", "checks", "cleanup"))
        subject = f"[{_area(sorted(changes)[0])}] {code.fn(True).replace('_', ' ').capitalize()} {noun}"
        body = " ".join(code.sentence() for _ in range(rng.randint(1, 3)))
        return self._commit(subject, body, self._pull_request(), when, changes)

    def plan_before(self, count: int) -> list[_Planned]:
        return [self._generic(_ROOT_TS + (i + 1) * _DAY)[0] for i in range(count)]

    def plan_after(self, count: int, start: int) -> list[_Planned]:
        return [self._generic(start + (i + 1) * _DAY)[0] for i in range(count)]

    def _bulk(self, when: int, bulk: _Bulk) -> _Planned:
        changes: dict[str, str | None] = {}
        for path in sorted(self.filler):
            if not path.startswith(bulk.prefixes):
                continue
            text = self.text(path)
            if bulk.old:
                if bulk.old in text:
                    changes[path] = text.replace(bulk.old, bulk.new)
            elif self.rng.random() < 0.5:
                changes[path] = _generic_edit(text, random.Random(f"{self.seed}/bulk/{when}/{path}"), _lang(path))
        body = " ".join(_Code(self.rng).sentence() for _ in range(2))
        return self._commit(bulk.subject, body, self._pull_request(), when, changes)[0]

    def plan_between(self, start: int) -> list[_Planned]:
        designed = {d.position: d for d in _DESIGNED_COMMITS}
        out: list[_Planned] = []
        reverted: tuple[_Planned, dict[str, str | None]] | None = None
        for pos in range(UPSTREAM_COMMITS_BETWEEN):
            when = start + (pos + 1) * 4 * _DAY + self.rng.randint(0, 20_000)
            spec = designed.get(pos)
            if spec is not None:
                changes: dict[str, str | None] = {}
                for path, specs in spec.ops:
                    self.up_ops[path] += _resolve(path, specs, f"up{pos}", self.seed, self.models[path])
                    changes[path] = _apply(self.models[path], self.up_ops[path]).render()
                for path in spec.generic:
                    edit_rng = random.Random(f"{self.seed}/gen/{pos}/{path}")
                    changes[path] = _generic_edit(self.text(path), edit_rng, _lang(path))
                body = " ".join(_Code(self.rng).sentence() for _ in range(2))
                pr = (ABSORBING_PR if pos == _ABSORBING_POSITION else self._pull_request()) if spec.with_pr else None
                out.append(self._commit(spec.subject, body, pr, when, changes)[0])
            elif pos in _BULK_COMMITS:
                out.append(self._bulk(when, _BULK_COMMITS[pos]))
            elif pos == _REVERTED_POSITION:
                reverted = self._generic(when)
                out.append(reverted[0])
            elif pos == _REVERT_POSITION and reverted is not None:
                # The revert puts the files back; its message names the PR, but not as a merge-bot trailer.
                original, previous = reverted
                body = (
                    f"Reverted {PR_URL}{original.pull_request} on behalf of "
                    f"https://github.com/{_AUTHORS[0][1]} due to breaking trunk"
                )
                subject = f'Revert "{original.subject} (#{original.pull_request})"'
                out.append(self._commit(subject, body, None, when, previous)[0])
            else:
                out.append(self._generic(when)[0])
        return out


_REVERTED_POSITION = 16
_REVERT_POSITION = 20


@dataclass(frozen=True)
class _Bulk:
    """A tree-wide commit (codemod or reformat): real releases differ in thousands of files, and that is
    what makes a full checkout of the target, and merge-tree, cost what they cost."""

    subject: str
    prefixes: tuple[str, ...]
    old: str  # text replaced everywhere it occurs; empty: an ordinary edit to half the files
    new: str


_BULK_COMMITS: dict[int, _Bulk] = {
    5: _Bulk(
        "[codemod] Use std::scoped_lock instead of std::lock_guard in ATen and c10",
        ("aten/", "c10/"),
        "std::lock_guard<std::mutex>",
        "std::scoped_lock",
    ),
    12: _Bulk(
        "[BE] Prefer TORCH_CHECK_VALUE for argument checks in torch/csrc",
        ("torch/csrc/",),
        "TORCH_CHECK(",
        "TORCH_CHECK_VALUE(",
    ),
    26: _Bulk(
        "[BE] Use torch.inference_mode() in inductor, dynamo and the tests",
        ("torch/_inductor", "torch/_dynamo", "test/"),
        "with torch.no_grad():",
        "with torch.inference_mode():",
    ),
    34: _Bulk(
        "[BE] Apply the new formatter to torch/distributed and torch/nn", ("torch/distributed", "torch/nn"), "", ""
    ),
}


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def _commit_chunk(ref: str, mark: int, parent: int | None, planned: _Planned) -> bytes:
    name, handle = _AUTHORS[planned.author]
    author = f"{name} <{handle}@example.com> {planned.when} +0000"
    committer = f"{_MERGEBOT[0]} <{_MERGEBOT[1]}> {planned.when + 600} +0000" if planned.pull_request else author
    approver = _AUTHORS[(planned.author + 3) % len(_AUTHORS)][1]
    message = _message(planned.subject, planned.body, planned.pull_request, approver).encode()
    head = f"commit {ref}\nmark :{mark}\nauthor {author}\ncommitter {committer}\n".encode()
    parts = [head, _data(message)]
    if parent is not None:
        parts.append(f"from :{parent}\n".encode())
    for path, text in planned.changes:
        if text is None:
            parts.append(f"D {path}\n".encode())
        else:
            mode = "100755" if path.endswith(".sh") else "100644"
            parts.append(f"M {mode} inline {path}\n".encode() + _data(text.encode()))
    parts.append(b"\n")
    return b"".join(parts)


def _tag_chunk(tag: str, mark: int, when: int, message: str) -> bytes:
    return f"tag {tag}\nfrom :{mark}\ntagger {_RELEASER[0]} <{_RELEASER[1]}> {when} +0000\n".encode() + _data(
        message.encode()
    )


def _root_chunks(history: _History, paths: Sequence[str], sizes: list[int]) -> Iterator[bytes]:
    when = _ROOT_TS
    author = f"{_RELEASER[0]} <{_RELEASER[1]}> {when} +0000"
    message = b"Import a PyTorch-shaped synthetic tree\n\nGenerated by mpspatch's benchmark fixtures.\n"
    yield f"commit refs/heads/{MAIN_BRANCH}\nmark :1\nauthor {author}\ncommitter {author}\n".encode() + _data(message)
    batch: list[bytes] = []
    for path in paths:
        payload = history.base_text(path).encode()
        sizes.append(len(payload))
        mode = "100755" if path.endswith(".sh") else "100644"
        batch.append(f"M {mode} inline {path}\n".encode() + _data(payload))
        if len(batch) >= 256:
            yield b"".join(batch)
            batch = []
    batch.append(b"\n")
    yield b"".join(batch)


def build_upstream(root: Path, *, n_files: int = DEFAULT_FILES, seed: int = DEFAULT_SEED) -> UpstreamFixture:
    """Create the upstream repository at ``root`` (which must not exist) and check out ``main``."""
    named, filler = _layout(n_files, seed)
    history = _History(seed, named, filler, _Pools(seed))
    base_paths = sorted([*named, *filler])
    before = history.plan_before(3)
    between = history.plan_between(_ROOT_TS + 10 * _DAY)
    after = history.plan_after(2, between[-1].when + 2 * _DAY)

    root.mkdir(parents=True)
    run_git(["init", "-q", "-b", MAIN_BRANCH, str(root)], root.parent)
    sizes: list[int] = []

    def stream() -> Iterator[bytes]:
        yield from _root_chunks(history, base_paths, sizes)
        mark = 1
        ref = f"refs/heads/{MAIN_BRANCH}"
        for planned in before:
            yield _commit_chunk(ref, mark + 1, mark, planned)
            mark += 1
        base_mark = mark
        yield _tag_chunk(BASE_TAG, base_mark, _ROOT_TS + 9 * _DAY, "PyTorch 2.9.1 release\n")
        for planned in between:
            yield _commit_chunk(ref, mark + 1, mark, planned)
            mark += 1
        target_mark = mark
        yield _tag_chunk(TARGET_TAG, target_mark, between[-1].when + _DAY, "PyTorch 2.15.0 release\n")
        yield f"reset refs/heads/{TARGET_BRANCH}\nfrom :{target_mark}\n\n".encode()
        for planned in after:
            yield _commit_chunk(ref, mark + 1, mark, planned)
            mark += 1
        yield b"done\n"

    feed_git(["fast-import", "--quiet", "--done"], root, stream())
    run_git(["reset", "--hard", "-q", MAIN_BRANCH], root)
    shas = git_out(["rev-list", "--reverse", f"{BASE_TAG}..{TARGET_TAG}"], root).split()
    if len(shas) != len(between):
        raise FixtureError(f"expected {len(between)} commits between the tags, found {len(shas)}")
    commits = tuple(
        UpstreamCommit(sha, p.subject, p.pull_request, tuple(path for path, _ in p.changes))
        for sha, p in zip(shas, between, strict=True)
    )
    return UpstreamFixture(
        repo=root,
        base_tag=BASE_TAG,
        target_tag=TARGET_TAG,
        target_branch=TARGET_BRANCH,
        base_commit=git_out(["rev-parse", f"{BASE_TAG}^{{commit}}"], root),
        target_commit=git_out(["rev-parse", f"{TARGET_TAG}^{{commit}}"], root),
        main_commit=git_out(["rev-parse", MAIN_BRANCH], root),
        files_at_base=len(base_paths),
        bytes_at_base=sum(sizes),
        commits=commits,
        expected=EXPECTED_DRIFT,
    )


# --------------------------------------------------------------------------------------------------
# The slice patch
# --------------------------------------------------------------------------------------------------


def _numstat(text: str) -> tuple[int, int]:
    insertions = deletions = 0
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].isdigit():
            insertions += int(parts[0])
            deletions += int(parts[1])
    return insertions, deletions


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def _downstream_commit(scratch: Path, base: str, files: Mapping[str, str], ref: str) -> str:
    message = b"[MPS] Thread-safe MPS stream pool (downstream slice)\n"
    author = f"Downstream Dev <dev@example.com> {_ROOT_TS + 30 * _DAY} +0000"
    parts = [f"commit {ref}\nauthor {author}\ncommitter {author}\n".encode(), _data(message), f"from {base}\n".encode()]
    parts += [f"M 100644 inline {path}\n".encode() + _data(text.encode()) for path, text in sorted(files.items())]
    feed_git(["fast-import", "--quiet"], scratch, [b"".join(parts), b"\n"])
    return git_out(["rev-parse", ref], scratch)


def build_slice_patch(upstream: UpstreamFixture, out: Path, *, seed: int = DEFAULT_SEED) -> PatchFixture:
    """Cut the 13-file slice patch from a downstream commit made in a throwaway clone.

    The clone borrows upstream's objects (``--shared``) but writes its own, so once it is deleted the
    downstream commit and its new blobs exist nowhere in the upstream repository.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.parent / f".slice-scratch-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        run_git(["clone", "-q", "--shared", "--no-checkout", str(upstream.repo), str(scratch)], out.parent)
        files: dict[str, str] = {}
        for path in _DESIGNED:
            model = _designed_model(path, seed)
            files[path] = _apply(model, _resolve(path, _PATCH_PLAN[path], "patch", seed, model)).render()
        probe = _downstream_commit(scratch, upstream.base_commit, files, "refs/heads/probe")
        ins, dels = _numstat(git_out(["diff", "--numstat", upstream.base_commit, probe], scratch))
        files[NEW_FILE] = _new_file_text(seed, SLICE_TOTAL_LINES - ins - dels)
        commit = _downstream_commit(scratch, upstream.base_commit, files, "refs/heads/downstream")
        text = run_git(["diff", "--full-index", upstream.base_commit, commit], scratch).stdout
        ins, dels = _numstat(git_out(["diff", "--numstat", upstream.base_commit, commit], scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _atomic_write(out, text)
    return PatchFixture(
        path=out,
        files=SLICE_PATHS,
        insertions=ins,
        deletions=dels,
        lines=text.count(b"\n"),
        downstream_commit=commit,
    )


# --------------------------------------------------------------------------------------------------
# The cumulative patch (text only; shaped like the real 50-file patch for `stats`)
# --------------------------------------------------------------------------------------------------

_CUMULATIVE_LAYOUT: tuple[tuple[str, tuple[str, ...], float], ...] = (
    (
        "Core MPS",
        (
            "aten/src/ATen/detail/MPSHooksInterface.h",
            *(MPS + name for name in ("MPSAllocator.h", "MPSAllocator.mm", "MPSAllocatorInterface.h", "MPSEvent.h",
                                     "MPSEvent.mm", "MPSGuardImpl.h", "MPSGuardImpl.mm", "MPSHooks.h", "MPSHooks.mm",
                                     "MPSProfiler.mm", "MPSStream.h", "MPSStream.mm")),
            NEW_FILE,
        ),
        3.0,
    ),
    (
        "Operations",
        (
            NMPS + "OperationUtils.h",
            NMPS + "OperationUtils.mm",
            *(OPS + name + ".mm" for name in _MPS_OPS[:29]),
            "aten/src/ATen/native/sparse/mps/SparseMPSTensor.mm",
        ),
        1.0,
    ),
    (
        "Python bindings",
        ("torch/csrc/mps/Module.cpp", "torch/mps/__init__.py", "aten/src/ATen/native/native_functions.yaml"),
        1.5,
    ),
    ("Tests", ("test/test_mps.py",), 4.0),
)


def _split_total(total: int, weights: Sequence[float], floor: int) -> list[int]:
    """Largest-remainder split of ``total`` by ``weights``, every share at least ``floor`` when weight > 0."""
    base = [floor if w > 0 else 0 for w in weights]
    rest = total - sum(base)
    wsum = sum(weights)
    raw = [rest * w / wsum for w in weights]
    shares = [b + int(r) for b, r in zip(base, raw, strict=True)]
    order = sorted(range(len(weights)), key=lambda k: raw[k] - int(raw[k]), reverse=True)
    for k in order[: total - sum(shares)]:
        shares[k] += 1
    return shares


def _short_hash(seed: int, *parts: str) -> str:
    return hashlib.sha1("/".join((str(seed), *parts)).encode()).hexdigest()[:8]


def _range(start: int, count: int) -> str:
    return f"{start}" if count == 1 else f"{start},{count}"


def build_cumulative_patch(
    out: Path,
    *,
    seed: int = DEFAULT_SEED,
    insertions: int = CUMULATIVE_INSERTIONS,
    deletions: int = CUMULATIVE_DELETIONS,
    lines: int = CUMULATIVE_LINES,
) -> PatchFixture:
    """Write a valid ``git diff`` text with abbreviated index lines, hitting the three totals exactly."""
    rng = random.Random(f"{seed}/cumulative")
    files: list[tuple[str, str, bool]] = []
    weights: list[float] = []
    for category, paths, factor in _CUMULATIVE_LAYOUT:
        for path in paths:
            files.append((category, path, path == NEW_FILE))
            weights.append(factor * rng.uniform(0.3, 1.0))
    ins_shares = _split_total(insertions, weights, 1)
    del_shares = _split_total(deletions, [0.0 if new else w for (_, _, new), w in zip(files, weights, strict=True)], 0)

    # Hunks per modified file, then fit the context: every hunk has 3 lines before and after, and the
    # gaps between change runs inside a hunk (1..6 lines, as git would print) absorb the remainder.
    hunks_per = [
        0 if new else max(1, round((i + d) / 33))
        for (_, _, new), i, d in zip(files, ins_shares, del_shares, strict=True)
    ]
    headers = sum(5 if new else 4 for _, _, new in files)
    n_hunks = sum(hunks_per) + sum(1 for _, _, new in files if new)
    gap_total = lines - insertions - deletions - headers - n_hunks - 6 * sum(hunks_per)
    gaps_wanted = max(0, round(gap_total / 3.5))

    # Runs per hunk: each hunk gets 1 + a share of the gaps, bounded by its number of changed lines.
    plan: list[list[tuple[int, int]]] = []  # per file: per hunk (ins, del)
    for (_, _, new), ins, dels, h in zip(files, ins_shares, del_shares, hunks_per, strict=True):
        if new:
            plan.append([(ins, 0)])
            continue
        ins_parts = _split_total(ins, [rng.uniform(0.5, 1.5) for _ in range(h)], 0)
        del_parts = _split_total(dels, [rng.uniform(0.5, 1.5) for _ in range(h)], 0)
        for k in range(h):
            if ins_parts[k] + del_parts[k] == 0:  # never an empty hunk
                donor = max(range(h), key=lambda x: ins_parts[x])
                ins_parts[donor] -= 1
                ins_parts[k] += 1
        plan.append(list(zip(ins_parts, del_parts, strict=True)))
    hunk_refs = [(f, k) for f, (_, _, new) in enumerate(files) if not new for k in range(len(plan[f]))]
    runs: dict[tuple[int, int], int] = dict.fromkeys(hunk_refs, 1)
    capacity = {ref: sum(plan[ref[0]][ref[1]]) for ref in hunk_refs}
    for _ in range(gaps_wanted):
        open_refs = [ref for ref in hunk_refs if runs[ref] < capacity[ref]]
        if not open_refs:
            break
        runs[rng.choice(open_refs)] += 1
    gaps: dict[tuple[int, int], list[int]] = {ref: [1] * (runs[ref] - 1) for ref in hunk_refs}
    extra = gap_total - sum(len(g) for g in gaps.values())
    slots = [(ref, k) for ref in hunk_refs for k in range(len(gaps[ref]))]
    rng.shuffle(slots)
    while extra > 0 and slots:
        for ref, k in list(slots):
            if extra == 0:
                break
            if gaps[ref][k] < 6:
                gaps[ref][k] += 1
                extra -= 1
            else:
                slots.remove((ref, k))
    if extra != 0:
        raise ValueError("cannot fit the cumulative patch to the requested line count")

    out_lines: list[str] = []
    counts: dict[str, list[int]] = {}
    for f, (category, path, new) in enumerate(files):
        lang = _lang(path)
        pad = "    " if lang in ("py", "pytest") else "  "
        old_code = _Code(random.Random(f"{seed}/cumulative/{path}/old"))
        new_code = _Code(random.Random(f"{seed}/cumulative/{path}/new"), "pool")
        tally = counts.setdefault(category, [0, 0, 0])
        tally[0] += 1
        out_lines.append(f"diff --git a/{path} b/{path}")
        if new:
            body = new_code.body("hdr", plan[f][0][0], "  ")
            out_lines += [
                "new file mode 100644",
                f"index 00000000..{_short_hash(seed, path, 'new')}",
                "--- /dev/null",
                f"+++ b/{path}",
                f"@@ -0,0 +{_range(1, len(body))} @@",
            ]
            out_lines += ["+" + line for line in body]
            tally[1] += len(body)
            continue
        out_lines += [
            f"index {_short_hash(seed, path, 'old')}..{_short_hash(seed, path, 'new')} 100644",
            f"--- a/{path}",
            f"+++ b/{path}",
        ]
        old_at = rng.randint(8, 60)
        shift = 0
        for k, (ins, dels) in enumerate(plan[f]):
            ref = (f, k)
            marks = ["-"] * dels + ["+"] * ins
            rng.shuffle(marks)
            cuts = sorted(rng.sample(range(1, len(marks)), runs[ref] - 1)) if runs[ref] > 1 else []
            segments = [marks[a:b] for a, b in zip([0, *cuts], [*cuts, len(marks)], strict=True)]
            hunk: list[str] = [" " + line for line in old_code.body(lang, 3, pad)]
            for s, segment in enumerate(segments):
                # Within a run git prints the deletions first, then the insertions.
                hunk += ["-" + line for line in old_code.body(lang, segment.count("-"), pad)]
                hunk += ["+" + line for line in new_code.body(lang, segment.count("+"), pad)]
                if s < len(segments) - 1:
                    hunk += [" " + line for line in old_code.body(lang, gaps[ref][s], pad)]
            hunk += [" " + line for line in old_code.body(lang, 3, pad)]
            old_count = sum(1 for line in hunk if line[0] in " -")
            new_count = sum(1 for line in hunk if line[0] in " +")
            name = old_code.fn(lang in ("py", "pytest"))
            context = {"py": f"def {name}(self):", "pytest": f"def test_{name}(self):", "yaml": f"- func: {name}"}.get(
                lang, f"void {name}(const Tensor& self) {{"
            )
            out_lines.append(f"@@ -{_range(old_at, old_count)} +{_range(old_at + shift, new_count)} @@ {context}")
            out_lines += hunk
            shift += ins - dels
            old_at += old_count + rng.randint(8, 120)
            tally[1] += ins
            tally[2] += dels
    text = "\n".join(out_lines) + "\n"
    if len(out_lines) != lines:
        raise ValueError(f"cumulative patch came out at {len(out_lines)} lines, wanted {lines}")
    _atomic_write(out, text.encode())
    return PatchFixture(
        path=out,
        files=tuple(path for _, path, _ in files),
        insertions=insertions,
        deletions=deletions,
        lines=len(out_lines),
        categories=tuple(CategoryCount(name, c[0], c[1], c[2]) for name, c in counts.items()),
    )


# --------------------------------------------------------------------------------------------------
# Cached build and CLI
# --------------------------------------------------------------------------------------------------

MANIFEST = "manifest.json"
SLICE_NAME = "patches/slice.patch"
CUMULATIVE_NAME = "patches/cumulative-v2.9.1-to-mps-stream-pool.patch"


def _to_json(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _patch_from(data: Mapping[str, object]) -> PatchFixture:
    cats = [_dict(c) for c in _list(data["categories"])]
    return PatchFixture(
        path=Path(str(data["path"])),
        files=tuple(str(x) for x in _list(data["files"])),
        insertions=_int(data["insertions"]),
        deletions=_int(data["deletions"]),
        lines=_int(data["lines"]),
        downstream_commit=None if data["downstream_commit"] is None else str(data["downstream_commit"]),
        categories=tuple(
            CategoryCount(str(c["name"]), _int(c["files"]), _int(c["insertions"]), _int(c["deletions"])) for c in cats
        ),
    )


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    return value


def _dict(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _load(root: Path) -> FixtureSet:
    """Rebuild the FixtureSet from the manifest, with paths re-rooted at ``root`` (the tree may have moved)."""
    data = _dict(json.loads((root / MANIFEST).read_text()))
    up = _dict(data["upstream"])
    exp = _dict(up["expected"])
    commits = tuple(
        UpstreamCommit(
            str(c["sha"]),
            str(c["subject"]),
            None if c["pull_request"] is None else _int(c["pull_request"]),
            tuple(str(p) for p in _list(c["paths"])),
        )
        for c in (_dict(x) for x in _list(up["commits"]))
    )
    expected = ExpectedDrift(
        conflicts=tuple(
            ConflictExpectation(str(c["path"]), _int(c["regions"])) for c in (_dict(x) for x in _list(exp["conflicts"]))
        ),
        absorbed=tuple(str(p) for p in _list(exp["absorbed"])),
        partly_absorbed=tuple(str(p) for p in _list(exp["partly_absorbed"])),
        clean=tuple(str(p) for p in _list(exp["clean"])),
        absorbing_pull_request=_int(exp["absorbing_pull_request"]),
    )
    upstream = UpstreamFixture(
        repo=root / "upstream",
        base_tag=str(up["base_tag"]),
        target_tag=str(up["target_tag"]),
        target_branch=str(up["target_branch"]),
        base_commit=str(up["base_commit"]),
        target_commit=str(up["target_commit"]),
        main_commit=str(up["main_commit"]),
        files_at_base=_int(up["files_at_base"]),
        bytes_at_base=_int(up["bytes_at_base"]),
        commits=commits,
        expected=expected,
    )
    slice_patch = replace(_patch_from(_dict(data["slice_patch"])), path=root / SLICE_NAME)
    cumulative = replace(_patch_from(_dict(data["cumulative_patch"])), path=root / CUMULATIVE_NAME)
    build_seconds = data["build_seconds"]
    return FixtureSet(
        root=root,
        seed=_int(data["seed"]),
        n_files=_int(data["n_files"]),
        generator_version=_int(data["generator_version"]),
        upstream=upstream,
        slice_patch=slice_patch,
        cumulative_patch=cumulative,
        build_seconds=float(build_seconds) if isinstance(build_seconds, int | float) else 0.0,
    )


def _cached(root: Path, n_files: int, seed: int) -> FixtureSet | None:
    try:
        fixture = _load(root)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (fixture.generator_version, fixture.n_files, fixture.seed) != (GENERATOR_VERSION, n_files, seed):
        return None
    if not fixture.upstream.repo.is_dir():
        return None
    probe = run_git(["rev-parse", "--verify", "-q", f"{TARGET_TAG}^{{commit}}"], fixture.upstream.repo, ok=(0, 1, 128))
    if probe.stdout.decode().strip() != fixture.upstream.target_commit:
        return None
    if not (fixture.slice_patch.path.is_file() and fixture.cumulative_patch.path.is_file()):
        return None
    return fixture


def build_all(root: Path, *, n_files: int = DEFAULT_FILES, seed: int = DEFAULT_SEED) -> FixtureSet:
    """Build every fixture into ``root`` (which must not exist) and write its manifest."""
    started = time.perf_counter()
    upstream = build_upstream(root / "upstream", n_files=n_files, seed=seed)
    slice_patch = build_slice_patch(upstream, root / SLICE_NAME, seed=seed)
    cumulative = build_cumulative_patch(root / CUMULATIVE_NAME, seed=seed)
    fixture = FixtureSet(
        root=root,
        seed=seed,
        n_files=n_files,
        generator_version=GENERATOR_VERSION,
        upstream=upstream,
        slice_patch=slice_patch,
        cumulative_patch=cumulative,
        build_seconds=round(time.perf_counter() - started, 3),
    )
    payload = json.dumps(_to_json(asdict(fixture)), indent=2, sort_keys=True) + "\n"
    _atomic_write(root / MANIFEST, payload.encode())
    return fixture


def ensure_fixtures(
    root: Path = DEFAULT_ROOT, *, n_files: int = DEFAULT_FILES, seed: int = DEFAULT_SEED, rebuild: bool = False
) -> FixtureSet:
    """Reuse the fixture at ``root`` when its manifest matches, else build a fresh one and swap it in."""
    root = root.resolve()
    if not rebuild:
        cached = _cached(root, n_files, seed)
        if cached is not None:
            return cached
    staging = root.with_name(f"{root.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        build_all(staging, n_files=n_files, seed=seed)
        old = root.with_name(f"{root.name}.old-{os.getpid()}")
        if root.exists():
            root.rename(old)
        staging.rename(root)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _load(root)


@dataclass(frozen=True)
class _Args:
    root: Path
    files: int
    seed: int
    rebuild: bool
    as_json: bool = field(default=False)


def _parse(argv: Sequence[str] | None) -> _Args:
    parser = argparse.ArgumentParser(description="Build (or reuse) mpspatch's real-scale benchmark fixtures.")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="fixture folder (default: %(default)s)")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help="files in the upstream tree at v2.9.1")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rebuild", action="store_true", help="ignore a cached build")
    parser.add_argument("--json", dest="as_json", action="store_true", help="print the manifest as JSON")
    ns = parser.parse_args(argv)
    return _Args(ns.root, ns.files, ns.seed, ns.rebuild, ns.as_json)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    args = _parse(argv)
    try:
        fixture = ensure_fixtures(args.root, n_files=args.files, seed=args.seed, rebuild=args.rebuild)
    except ValueError as exc:
        print(f"fixtures.py: {exc}", file=sys.stderr)
        return 2
    if args.as_json:
        out(json.dumps(_to_json(asdict(fixture)), indent=2, sort_keys=True))
        return 0
    up = fixture.upstream
    out(f"upstream         {up.repo}  ({up.files_at_base} files, {up.bytes_at_base / 1e6:.1f} MB at {up.base_tag})")
    out(f"  {up.base_tag:<14} {up.base_commit}")
    out(f"  {up.target_tag:<14} {up.target_commit}  ({len(up.commits)} commits later)")
    out(f"  {up.target_branch:<14} {up.target_commit}")
    for name, patch in (("slice patch", fixture.slice_patch), ("cumulative patch", fixture.cumulative_patch)):
        shape = f"{len(patch.files)} files, +{patch.insertions} -{patch.deletions}, {patch.lines} lines"
        out(f"{name:<16} {patch.path}  ({shape})")
    out(f"built in {fixture.build_seconds:.1f} s (generator v{fixture.generator_version}, seed {fixture.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ------------------------------------------------------------------------------ history at PyTorch's scale

SCALE_SIZES = (0, 1_000, 3_000, 10_000)
SERIES_SIZES = (1, 13, 50)


@dataclass(frozen=True)
class ScaledFixture:
    """The fixture's upstream plus `commits` PyTorch-shaped commits on top of the target tag, in a shared clone.

    About 10% of the commits touch the slice patch's files, in pairs that add and then remove one trailing
    comment line, so the merge outcome (conflicts, absorbed files) stays the designed one while the history
    a patch-id or absorption scan walks grows. Most other commits edit `native_functions.yaml` or one of a
    few hundred other files. Every commit carries the merge bot's trailers.
    """

    repo: Path
    commits: int
    base_tag: str
    onto: str  # a tag naming the last extra commit (the fixture's target tag when commits == 0)
    series: dict[int, tuple[Path, ...]]  # patches per series size: the whole slice, one per file, or 50 parts


def split_patch(patch: Path, out: Path) -> tuple[Path, ...]:
    """Cut a `git diff` into one patch per file, in order (names sort in series order)."""
    text = patch.read_bytes()
    parts = re.split(rb"(?m)^(?=diff --git )", text)
    files = [p for p in parts if p.startswith(b"diff --git ")]
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for number, part in enumerate(files, 1):
        name = part.split(b"\n", 1)[0].rsplit(b"/", 1)[-1].decode().replace(".", "-")
        target = out / f"{number:02d}-{name}.patch"
        target.write_bytes(part)
        made.append(target)
    return tuple(made)


def cut_patch(repo: Path, base: str, patch: Path, out: Path, count: int) -> tuple[Path, ...]:
    """Cut a `git diff` into `count` patches that apply in order on `base`, the shape of a long split stack.

    The change is broken into units, file by file in diff order: each changed block of lines (large added
    blocks in pieces of at most 20 lines), each added or removed file as a whole. The units are shared out
    into `count` consecutive groups; each group is committed on top of the one before in a throwaway index,
    and each patch is `git diff --full-index` of one commit against the previous, so every patch applies
    strictly and names the blobs it applies to.
    """
    import difflib

    with tempfile.TemporaryDirectory(prefix="cut-") as tmp:
        env = git_env({"GIT_INDEX_FILE": str(Path(tmp) / "index")})
        run_git(["read-tree", base], repo, env=env)
        run_git(["apply", "--cached", str(patch)], repo, env=env)
        final = run_git(["write-tree"], repo, env=env).stdout.decode().strip()
        names = run_git(["diff", "--name-only", "-z", "--no-renames", base, final], repo).stdout.decode()
        paths = [p for p in names.split("\0") if p]
        before = dict(zip(paths, _read_all_or_none(repo, base, paths), strict=True))
        after = dict(zip(paths, _read_all_or_none(repo, final, paths), strict=True))
        # A unit: (path, op index, piece) -> the state of that op once the unit is in.
        units: list[tuple[str, int, int]] = []
        ops: dict[str, list[tuple[str, int, int, int, int, int]]] = {}
        for path in paths:
            old, new = before[path], after[path]
            if old is None or new is None:
                ops[path] = []
                units.append((path, -1, 1))
                continue
            a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
            found = []
            for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
                pieces = max(1, -(-(j2 - j1) // 20)) if tag != "delete" else 1
                found.append((tag, i1, i2, j1, j2, pieces))
                if tag != "equal":
                    units.extend((path, len(found) - 1, k + 1) for k in range(pieces))
            ops[path] = found
        if len(units) < count:
            raise FixtureError(f"{patch}: only {len(units)} changed blocks, fewer than {count} patches")
        bounds = [round(len(units) * k / count) for k in range(count + 1)]
        applied: dict[tuple[str, int], int] = {}
        parent = run_git(["rev-parse", f"{base}^{{commit}}"], repo).stdout.decode().strip()
        out.mkdir(parents=True, exist_ok=True)
        made = []
        run_git(["read-tree", base], repo, env=env)
        for number in range(count):
            touched: list[str] = []
            for path, op, piece in units[bounds[number] : bounds[number + 1]]:
                applied[(path, op)] = piece
                touched.append(path)
            info = []
            for path in dict.fromkeys(touched):
                mine = {op: n for (p, op), n in applied.items() if p == path}
                data = _state(before[path], after[path], ops[path], mine)
                if data is None:
                    info.append(f"0 {'0' * 40}\t{path}\0")
                    continue
                blob = run_git(["hash-object", "-w", "--stdin"], repo, stdin=data).stdout.decode().strip()
                info.append(f"100644 {blob}\t{path}\0")
            run_git(["update-index", "-z", "--index-info"], repo, env=env, stdin="".join(info).encode())
            tree = run_git(["write-tree"], repo, env=env).stdout.decode().strip()
            commit = run_git(["commit-tree", tree, "-p", parent, "-m", f"part {number + 1}"], repo,
                             env=identity_env(1_700_000_000 + number)).stdout.decode().strip()
            first = touched[0].rsplit("/", 1)[-1].replace(".", "-")
            target = out / f"{number + 1:02d}-{first}.patch"
            target.write_bytes(run_git(["diff", "--full-index", "--no-renames", parent, commit], repo).stdout)
            made.append(target)
            parent = commit
        if run_git(["rev-parse", f"{parent}^{{tree}}"], repo).stdout.decode().strip() != final:
            raise FixtureError(f"{patch}: the {count} parts do not add up to the patch")
    return tuple(made)


def _state(old: bytes | None, new: bytes | None, ops: Sequence[tuple[str, int, int, int, int, int]],
           applied: Mapping[int, int]) -> bytes | None:
    """A file with the first `applied[op]` pieces of each op in (an added or removed file: op -1)."""
    if -1 in applied:
        return new
    if old is None:
        return old
    a, b = old.splitlines(keepends=True), (new or b"").splitlines(keepends=True)
    parts: list[bytes] = []
    for index, (tag, i1, i2, j1, j2, pieces) in enumerate(ops):
        done = applied.get(index, 0)
        if tag == "equal" or not done:
            parts.extend(a[i1:i2])
        else:
            size = -(-(j2 - j1) // pieces)
            parts.extend(b[j1 : min(j2, j1 + size * done)])
    return b"".join(parts)


def _read_all_or_none(repo: Path, treeish: str, paths: Sequence[str]) -> list[bytes | None]:
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input="".join(f"{treeish}:{p}\n" for p in paths)
                         .encode(), capture_output=True, check=True, env=git_env()).stdout
    found: list[bytes | None] = []
    pos = 0
    for _ in paths:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if header[-1] == b"missing":
            found.append(None)
            pos = end + 1
            continue
        size = int(header[2])
        found.append(out[end + 1 : end + 1 + size])
        pos = end + 2 + size
    return found


def ensure_scaled(fixture: FixtureSet, commits: int) -> ScaledFixture:
    """Build (or reuse) the fixture upstream with `commits` extra upstream commits (one fast-import stream)."""
    root = fixture.root / "scaled" / str(commits)
    repo = root / "upstream"
    onto = fixture.upstream.target_tag if commits == 0 else f"scale-{commits}"
    series = {1: (fixture.slice_patch.path,),
              13: split_patch(fixture.slice_patch.path, root / "patches" / "split")}
    done = root / "done"
    if done.exists():
        series[50] = _cut_50(fixture, repo, root)
        return ScaledFixture(repo, commits, fixture.upstream.base_tag, onto, series)
    shutil.rmtree(repo, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    run_git(["clone", "-q", "--shared", str(fixture.upstream.repo), str(repo)], root)
    if commits:
        feed_git(["fast-import", "--quiet", "--done"], repo, _scale_stream(repo, fixture, commits, onto))
    done.write_text("ok\n")
    series[50] = _cut_50(fixture, repo, root)
    return ScaledFixture(repo, commits, fixture.upstream.base_tag, onto, series)


def _cut_50(fixture: FixtureSet, repo: Path, root: Path) -> tuple[Path, ...]:
    folder = root / "patches" / "cut-50"
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        cut_patch(repo, fixture.upstream.base_tag, fixture.slice_patch.path, folder, 50)
        (folder / "done").write_text("ok\n")
    return tuple(sorted(folder.glob("*.patch")))


def _scale_stream(repo: Path, fixture: FixtureSet, commits: int, tag: str) -> Iterator[bytes]:
    rng = random.Random(commits)
    target = fixture.upstream.target_commit
    when = int(git_out(["log", "-1", "--format=%ct", target], repo).strip())
    listing = git_out(["ls-tree", "-r", "--name-only", target], repo).split("\n")
    present = set(listing)
    patched = sorted(p for p in fixture.slice_patch.files if p in present)  # not the files the patch adds
    yaml = next((p for p in listing if p.endswith("native_functions.yaml")), None)
    others = [p for p in listing if p and p not in set(patched) and p != yaml]
    rng.shuffle(others)
    hot = ([yaml] * 100 if yaml else []) + others[:300]
    wanted = sorted({*patched, *hot})
    blobs = dict(zip(wanted, _read_all(repo, target, wanted), strict=True))
    state: dict[str, int] = {}  # patched path -> marker line count currently appended (0 or 1)
    authors = ["malfet", "kulinseth", "albanD", "ezyang", "huydhn", "pytorchbot"]
    for number in range(commits):
        pending = [p for p in patched if state.get(p)]
        if pending and (rng.random() < 0.3 or number == commits - 1):
            path = rng.choice(pending)
            state[path] = 0
            content, what = blobs[path], "Revert trailing note in"
        elif rng.random() < 0.05 and number < commits - 1:
            path = rng.choice(patched)
            if state.get(path):
                state[path] = 0
                content, what = blobs[path], "Revert trailing note in"
            else:
                state[path] = 1
                content = blobs[path] + f"// note {number}\n".encode()
                what = "Add trailing note to"
        else:
            path = rng.choice(hot)
            content, what = blobs[path] + f"# rev {number}\n".encode(), "Update"
        pr = 200_000 + number
        message = (f"[{_area(path)}] {what} {path.rsplit('/', 1)[-1]} (#{pr})\n\n"
                   f"Pull Request resolved: https://github.com/pytorch/pytorch/pull/{pr}\n"
                   f"Approved by: https://github.com/{rng.choice(authors)}\n")
        stamp = when + 60 * (number + 1)
        parent = f"from {target}\n" if number == 0 else ""
        yield (f"commit refs/tags/{tag}\nmark :{number + 1}\n"
               f"author Upstream Dev <dev@pytorch.org> {stamp} +0000\n"
               f"committer PyTorch MergeBot <pytorchmergebot@users.noreply.github.com> {stamp} +0000\n").encode()
        yield _data(message.encode()) + parent.encode()
        yield f"M 100644 inline {path}\n".encode() + _data(content) + b"\n"
    # Pairs still open at the end are closed, so the patched files end exactly as the target has them.
    for path in [p for p in patched if state.get(p)]:
        commits += 1
        stamp = when + 60 * (commits + 1)
        yield (f"commit refs/tags/{tag}\nmark :{commits}\n"
               f"committer PyTorch MergeBot <pytorchmergebot@users.noreply.github.com> {stamp} +0000\n").encode()
        yield _data(f"Revert trailing note in {path}\n\nPull Request resolved: "
                    f"https://github.com/pytorch/pytorch/pull/{300_000 + commits}\n".encode())
        yield f"M 100644 inline {path}\n".encode() + _data(blobs[path]) + b"\n"
    yield b"done\n"


def _read_all(repo: Path, commit: str, paths: Sequence[str]) -> list[bytes]:
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input="".join(f"{commit}:{p}\n" for p in paths)
                         .encode(), capture_output=True, check=True, env=git_env()).stdout
    found, pos = [], 0
    for _ in paths:
        end = out.index(b"\n", pos)
        size = int(out[pos:end].split()[2])
        found.append(out[end + 1 : end + 1 + size])
        pos = end + 2 + size
    return found
