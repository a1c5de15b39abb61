"""Scenarios for the structured merge of native_functions.yaml: a PyTorch-shaped upstream whose v1.1 edits
the file, and a project whose one-patch series edits it against v1.0, in real repositories.

The file follows PyTorch's shape: a comment header, `- func:` entries separated by blank lines, keys two
spaces in, `dispatch:` maps four spaces in with grouped backends (`SparseCPU, SparseCUDA: ...`), trailing
comments and `tags: [...]`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from scenarios import Scenario, diff_against
from support import Repo, git_env

NATIVE_YAML = "aten/src/ATen/native/native_functions.yaml"
COPY_MM = "aten/src/ATen/native/mps/operations/Copy.mm"

NATIVE_V10 = """\
# See README.md in this directory for more guidance

# *********NB: _cast_* operators are DEPRECATED and will be removed
# eventually.

# DEPRECATED. DO NOT USE
- func: _cast_Byte(Tensor self, bool non_blocking=False) -> Tensor
  variants: function

- func: abs(Tensor self) -> Tensor
  device_check: NoCheck   # TensorIterator
  variants: function, method
  dispatch:
    CompositeExplicitAutograd: abs
    SparseCPU, SparseCUDA: abs_sparse
    SparseCsrCPU, SparseCsrCUDA, SparseCsrMeta: abs_sparse_csr
  tags: [core, pointwise]

- func: record_stream(Tensor(a!) self, Stream s) -> ()
  variants: method
  dispatch:
    CUDA: record_stream_cuda

- func: _local_scalar_dense(Tensor self) -> Scalar
  dispatch:
    CPU: _local_scalar_dense_cpu
    CUDA: _local_scalar_dense_cuda
    MPS: _local_scalar_dense_mps
  variants: function

# Note [Adding an alias]
- func: absolute(Tensor self) -> Tensor
  device_check: NoCheck   # TensorIterator
  variants: function, method
"""

COPY_V10 = "".join(f"static int copy_step_{i}(int value) {{\n  // step {i}\n  return value * {i};\n}}\n\n"
                   for i in range(6))

RECORD_STREAM = "    CUDA: record_stream_cuda\n"
XPU = "    XPU: record_stream_xpu\n"
MPS = "    MPS: record_stream_mps\n"
ALIAS_NOTE = "# Note [Adding an alias]\n"


def with_line_after(text: str, anchor: str, added: str) -> str:
    assert anchor in text, anchor
    return text.replace(anchor, anchor + added, 1)


def entry(name: str, kernel: str) -> str:
    return f"- func: {name}(Tensor self) -> Tensor\n  dispatch:\n    {kernel}\n\n"


# Each case: upstream's v1.1 files and the patch's files (both against v1.0).
CASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # The real record_stream collision: upstream adds XPU where the patch adds MPS.
    "dispatch-keys": ({NATIVE_YAML: with_line_after(NATIVE_V10, RECORD_STREAM, XPU)},
                      {NATIVE_YAML: with_line_after(NATIVE_V10, RECORD_STREAM, MPS)}),
    # Both sides give MPS a kernel, different ones.
    "same-key": ({NATIVE_YAML: with_line_after(NATIVE_V10, RECORD_STREAM, "    MPS: record_stream_mps_upstream\n")},
                 {NATIVE_YAML: with_line_after(NATIVE_V10, RECORD_STREAM, MPS)}),
    # Both sides add a new op at the same spot.
    "new-entries": ({NATIVE_YAML: NATIVE_V10.replace(ALIAS_NOTE, entry("_xpu_sync", "XPU: xpu_sync") + ALIAS_NOTE)},
                    {NATIVE_YAML: NATIVE_V10.replace(ALIAS_NOTE, entry("_mps_sync", "MPS: mps_sync") + ALIAS_NOTE)}),
    # A line conflict in an ObjC++ file whose two sides share their first line (zdiff3 moves it out).
    "mm-conflict": ({COPY_MM: COPY_V10.replace("  // step 2\n", "  // shared\n  // upstream step 2\n")},
                    {COPY_MM: COPY_V10.replace("  // step 2\n", "  // shared\n  // patch step 2\n")}),
}


def build_native_scenario(root: Path, case: str, extra_config: str = "") -> Scenario:
    upstream_files, patch_files = CASES[case]
    upstream = Repo.create(root / "upstream-origin")
    upstream.write(NATIVE_YAML, NATIVE_V10)
    upstream.write(COPY_MM, COPY_V10)
    tags = {"v1.0": upstream.commit("Initial import", tag="v1.0")}
    for path, text in upstream_files.items():
        upstream.write(path, text)
    tags["v1.1"] = upstream.commit("[XPU] Register ops\n\nPull Request resolved: "
                                   "https://github.com/pytorch/pytorch/pull/180001\n", tag="v1.1")
    checkout = root / "pytorch"
    subprocess.run(["git", "clone", "-q", str(upstream.path), str(checkout)], env=git_env(), check=True,
                   capture_output=True)
    project = root / "project"
    (project / "patches").mkdir(parents=True)
    patch = project / "patches" / "0001-mps.patch"
    patch.write_text(diff_against(Repo(checkout), "v1.0", patch_files))
    Repo(checkout).git("checkout", "-q", "main")
    config = project / "mpspatch.toml"
    config.write_text(f"""
[upstream]
url = "https://example.invalid/upstream.git"
checkout = "../pytorch"
base = "v1.0"
target = "v1.1"

[series]
patches = ["patches/0001-mps.patch"]
allowed_paths = ["{NATIVE_YAML}", "aten/src/ATen/native/mps/"]
{extra_config}
""")
    return Scenario(root=root, upstream=upstream, checkout=checkout, project=project, config=config,
                    patches=(patch,), layout=case, tags=tags)
