"""Stage parsers on real tool output: g++ ThreadSanitizer, pytest JUnit XML, clang-format, lintrunner.

Each tool runs for real here; the parsers are pure functions, so they are fed what the tools printed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpspatch.verify.stages import ERROR, FAILED, PASSED, CommandOutput, ParseInput
from mpspatch.verify.stages import build as build_parser
from mpspatch.verify.stages import lint as lint_parser
from mpspatch.verify.stages import tests as tests_parser
from mpspatch.verify.stages import tsan as tsan_parser

BIN = Path(sys.executable).parent

RACY_CPP = """
#include <cstdio>
#include <thread>
#include <vector>

// Several threads bump one counter with no synchronisation: a textbook data race.
static long hits = 0;

int main() {
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([] {
      for (int i = 0; i < 2000; ++i) ++hits;
    });
  }
  for (auto& w : workers) w.join();
  std::printf("hits=%ld\\n", hits);
  return 0;
}
"""

GUARDED_CPP = RACY_CPP.replace("#include <vector>", "#include <mutex>\n#include <vector>").replace(
    "static long hits = 0;", "static long hits = 0;\nstatic std::mutex hits_mutex;"
).replace("++hits;", "{ std::lock_guard<std::mutex> hold(hits_mutex); ++hits; }")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> CommandOutput:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=120)
    return CommandOutput(argv=tuple(argv), exit_code=done.returncode, output=done.stdout + done.stderr)


@pytest.fixture(scope="module")
def tsan_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    folder = tmp_path_factory.mktemp("tsan")
    built = {}
    for name, source in (("racy", RACY_CPP), ("guarded", GUARDED_CPP)):
        (folder / f"{name}.cpp").write_text(source)
        subprocess.run(["g++", "-std=c++17", "-fsanitize=thread", "-g", "-O1", f"{name}.cpp", "-o", name],
                       cwd=folder, check=True, timeout=120)
        built[name] = folder / name
    return built


# ------------------------------------------------------------------------------------------------- tsan


def test_tsan_counts_a_real_race(tsan_programs: dict[str, Path]) -> None:
    out = run([str(tsan_programs["racy"])], tsan_programs["racy"].parent)
    assert out.exit_code == 66
    parsed = tsan_parser.parse(ParseInput(commands=(out,), tree=""))
    assert parsed.status == FAILED
    counts = dict(parsed.counts)
    assert counts["races"] >= 1 and counts["warnings"] == counts["races"]
    assert "data race" in parsed.reason
    assert parsed.details and all(d.startswith("SUMMARY: ThreadSanitizer: data race") for d in parsed.details)
    assert any("racy.cpp:" in d for d in parsed.details)


def test_tsan_mutex_guarded_program_passes(tsan_programs: dict[str, Path]) -> None:
    out = run([str(tsan_programs["guarded"])], tsan_programs["guarded"].parent)
    assert out.exit_code == 0
    parsed = tsan_parser.parse(ParseInput(commands=(out,), tree=""))
    assert parsed.status == PASSED, parsed
    assert dict(parsed.counts) == {"races": 0, "warnings": 0}


def test_tsan_report_fails_even_when_exitcode_is_zero(tsan_programs: dict[str, Path]) -> None:
    env = {"TSAN_OPTIONS": "exitcode=0", "PATH": "/usr/bin:/bin"}
    out = run([str(tsan_programs["racy"])], tsan_programs["racy"].parent, env)
    assert out.exit_code == 0
    parsed = tsan_parser.parse(ParseInput(commands=(out,), tree="", env=tuple(env.items())))
    assert parsed.status == FAILED and dict(parsed.counts)["races"] >= 1


def test_tsan_suppressions_through_tsan_options(tsan_programs: dict[str, Path], tmp_path: Path) -> None:
    supp = tmp_path / "tsan.supp"
    supp.write_text("race:main\n")
    env = {"TSAN_OPTIONS": f"suppressions={supp} print_suppressions=1", "PATH": "/usr/bin:/bin"}
    out = run([str(tsan_programs["racy"])], tsan_programs["racy"].parent, env)
    parsed = tsan_parser.parse(ParseInput(commands=(out,), tree="", env=tuple(env.items())))
    assert parsed.status == PASSED, out.output
    assert dict(parsed.counts)["suppressed"] >= 1


def test_tsan_exit_66_without_a_report_is_not_a_pass() -> None:
    out = CommandOutput(argv=("./harness",), exit_code=66, output="harness done\n")
    parsed = tsan_parser.parse(ParseInput(commands=(out,), tree=""))
    assert parsed.status == FAILED and "log_path" in parsed.reason


def test_tsan_exit_code_and_keeps_going_follow_tsan_options() -> None:
    assert tsan_parser.exit_code_from([("TSAN_OPTIONS", "halt_on_error=0:exitcode=7")]) == 7
    assert tsan_parser.exit_code_from([]) == 66
    assert tsan_parser.keeps_going(66) and not tsan_parser.keeps_going(1)


# ------------------------------------------------------------------------------------------------ tests


SUITE = """
import pytest

def test_one(): assert 1 + 1 == 2
def test_two(): assert "mps".upper() == "MPS"
def test_three(): assert [1, 2][-1] == 2
def test_wrong_sum(): assert 1 + 1 == 3, "arithmetic is broken"
def test_wrong_len(): assert len("abc") == 4

@pytest.mark.skip(reason="needs a GPU")
def test_gpu(): pass

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

def test_with_broken_fixture(broken): pass
"""


def pytest_run(folder: Path, *args: str) -> CommandOutput:
    return run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], folder)


def test_pytest_failures_are_counted_exactly(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    out = pytest_run(tmp_path, "test_suite.py", "--junitxml=results.xml")
    assert out.exit_code == 1
    parsed = tests_parser.parse(ParseInput(commands=(out,), tree="", junit_files=(str(tmp_path / "results.xml"),)))
    assert parsed.status == FAILED
    assert dict(parsed.counts) == {"passed": 3, "failed": 2, "errors": 1, "skipped": 1}
    assert parsed.reason == "2 failed, 1 error of 6 tests run"
    assert any("test_wrong_sum: failed: AssertionError: arithmetic is broken" in d for d in parsed.details)
    assert any("test_with_broken_fixture: error" in d for d in parsed.details)


def test_a_suite_that_collects_nothing_fails(tmp_path: Path) -> None:
    (tmp_path / "test_empty.py").write_text("def helper():\n    return 1\n")
    out = pytest_run(tmp_path, "test_empty.py", "--junitxml=results.xml")
    assert out.exit_code == 5  # pytest: no tests collected
    parsed = tests_parser.parse(ParseInput(commands=(out,), tree="", junit_files=(str(tmp_path / "results.xml"),)))
    assert parsed.status == FAILED and parsed.reason == "ran 0 tests"


def test_all_skipped_is_zero_tests_run(tmp_path: Path) -> None:
    # What test_mps.py does without a usable GPU: everything skipped, exit 0.
    (tmp_path / "test_skip.py").write_text(
        "import pytest\n\n@pytest.mark.skip(reason='MPS not available')\ndef test_a(): pass\n"
    )
    out = pytest_run(tmp_path, "test_skip.py", "--junitxml=r.xml")
    assert out.exit_code == 0
    parsed = tests_parser.parse(ParseInput(commands=(out,), tree="", junit_files=(str(tmp_path / "r.xml"),)))
    assert parsed.status == FAILED and parsed.reason == "ran 0 tests (1 skipped)"


def test_fewer_than_min_tests_fails_and_enough_passes(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text("def test_a(): pass\ndef test_b(): pass\n")
    out = pytest_run(tmp_path, "test_ok.py", "--junitxml=r.xml")
    files = (str(tmp_path / "r.xml"),)
    short = tests_parser.parse(ParseInput(commands=(out,), tree="", junit_files=files, min_tests=3))
    assert short.status == FAILED and short.reason == "ran 2 tests, fewer than min_tests = 3"
    enough = tests_parser.parse(ParseInput(commands=(out,), tree="", junit_files=files, min_tests=2))
    assert enough.status == PASSED and dict(enough.counts)["passed"] == 2


def test_no_junit_file_is_an_error(tmp_path: Path) -> None:
    out = CommandOutput(argv=("pytest",), exit_code=4, output="ERROR: file or directory not found: nope.py\n")
    parsed = tests_parser.parse(ParseInput(commands=(out,), tree="", junit_pattern="results.xml"))
    assert parsed.status == ERROR
    assert parsed.reason == "no JUnit XML found at results.xml; `pytest` exited 4"


def test_junit_glob_reads_several_files(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text("def test_a(): pass\n")
    (tmp_path / "test_b.py").write_text("def test_b(): pass\ndef test_c(): assert False\n")
    outs = (pytest_run(tmp_path, "test_a.py", "--junitxml=out/a.xml"),
            pytest_run(tmp_path, "test_b.py", "--junitxml=out/b.xml"))
    files = tests_parser.junit_files("out/*.xml", tmp_path)
    assert [Path(f).name for f in files] == ["a.xml", "b.xml"]
    parsed = tests_parser.parse(ParseInput(commands=outs, tree="", junit_files=files))
    assert dict(parsed.counts) == {"passed": 2, "failed": 1, "errors": 0, "skipped": 0}


def test_unreadable_junit_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "r.xml"
    bad.write_text("<testsuite><testcase")
    parsed = tests_parser.parse(ParseInput(commands=(), tree="", junit_files=(str(bad),)))
    assert parsed.status == ERROR and "not readable JUnit XML" in parsed.reason


# -------------------------------------------------------------------------------------------- clang-format

CLANG_FORMAT_STYLE = """---
Language: Cpp
BasedOnStyle: Google
ColumnLimit: 100
---
Language: ObjC
BasedOnStyle: Google
ColumnLimit: 100
...
"""

BAD_MM = """#import <Metal/Metal.h>
@interface   StreamPool : NSObject
-(NSUInteger)   size;
@end
namespace at::mps {
int  pooled( int n ){return n*2;}
}
"""

GOOD_H = "#pragma once\n\nnamespace at::mps {\nint pooled(int n);\n}  // namespace at::mps\n"


def clang_format() -> str:
    found = shutil.which("clang-format") or str(BIN / "clang-format")
    if not Path(found).exists():
        pytest.skip("clang-format (the PyPI wheel) is not installed")
    return found


def test_clang_format_finds_a_badly_formatted_objc_file(tmp_path: Path) -> None:
    (tmp_path / ".clang-format").write_text(CLANG_FORMAT_STYLE)
    (tmp_path / "mps").mkdir()
    (tmp_path / "mps/Pool.mm").write_text(BAD_MM)
    (tmp_path / "mps/Pool.h").write_text(GOOD_H)
    out = run([clang_format(), "--dry-run", "--Werror", "mps/Pool.mm", "mps/Pool.h"], tmp_path)
    assert out.exit_code == 1
    parsed = lint_parser.parse(ParseInput(commands=(out,), tree=str(tmp_path)))
    assert parsed.status == FAILED
    counts = dict(parsed.counts)
    violations = out.output.count("[-Wclang-format-violations]")
    assert violations > 3 and counts["messages"] == counts["error"] == violations
    assert counts["files_flagged"] == 1
    assert f"mps/Pool.mm: {violations} (CLANGFORMAT x{violations})" in parsed.details


def test_clang_format_clean_files_pass(tmp_path: Path) -> None:
    (tmp_path / ".clang-format").write_text(CLANG_FORMAT_STYLE)
    (tmp_path / "Pool.h").write_text(GOOD_H)
    out = run([clang_format(), "--dry-run", "--Werror", "Pool.h"], tmp_path)
    parsed = lint_parser.parse(ParseInput(commands=(out,), tree=str(tmp_path)))
    assert parsed.status == PASSED and dict(parsed.counts)["messages"] == 0


def test_clang_format_bad_style_file_is_an_error_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / ".clang-format").write_text("BasedOnStyle: NoSuchStyle\n")
    (tmp_path / "Pool.mm").write_text(BAD_MM)
    out = run([clang_format(), "--dry-run", "--Werror", "Pool.mm"], tmp_path)
    parsed = lint_parser.parse(ParseInput(commands=(out,), tree=str(tmp_path)))
    assert parsed.status == ERROR and "clang-format" in parsed.reason


# ---------------------------------------------------------------------------------------------- lintrunner

ADAPTER = '''
"""A lintrunner adapter: flags tab indentation and trailing spaces, offering a fixed file."""
import argparse
import json

parser = argparse.ArgumentParser(fromfile_prefix_chars="@")
parser.add_argument("paths", nargs="*")
for path in parser.parse_args().paths:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    fixed = "\\n".join(line.rstrip().replace("\\t", "    ") for line in text.split("\\n"))
    for number, line in enumerate(text.split("\\n"), 1):
        problems = []
        if line.startswith("\\t"):
            problems.append(("TABS", "error", "tab indentation"))
        if line != line.rstrip():
            problems.append(("SPACE", "warning", "trailing whitespace"))
        for code, severity, what in problems:
            print(json.dumps({"path": path, "line": number, "char": None, "code": code, "severity": severity,
                              "name": what, "original": text, "replacement": fixed, "description": what}))
'''

DOWNLOAD_INIT = (
    "import sys, urllib.request\n"
    "try:\n"
    "    urllib.request.urlopen('https://example.invalid/clang-format', timeout=5)\n"
    "except OSError as exc:\n"
    "    print('download failed:', exc)\n"
    "    sys.exit(1)\n"
)

MISSING_BINARY_ADAPTER = (
    "import json\n"
    "print(json.dumps({'path': None, 'line': None, 'char': None, 'code': 'FETCHED', 'severity': 'error',\n"
    "    'name': 'init-error', 'original': None, 'replacement': None,\n"
    "    'description': 'Could not find the binary; did you forget to run `lintrunner init`?'}))\n"
)


def lintrunner_tree(tmp_path: Path, *, with_download: bool) -> Path:
    tree = tmp_path / "tree"
    (tree / "tools").mkdir(parents=True)
    (tree / "tools/ws_adapter.py").write_text(ADAPTER)
    (tree / "tools/fetch_init.py").write_text(DOWNLOAD_INIT)
    (tree / "tools/fetched_adapter.py").write_text(MISSING_BINARY_ADAPTER)
    config = (
        "[[linter]]\ncode = 'WS'\ninclude_patterns = ['**/*.py']\n"
        f"command = ['{sys.executable}', 'tools/ws_adapter.py', '--', '@{{{{PATHSFILE}}}}']\n"
    )
    if with_download:
        config += (
            "\n[[linter]]\ncode = 'FETCHED'\ninclude_patterns = ['**/*.py']\n"
            f"command = ['{sys.executable}', 'tools/fetched_adapter.py', '--', '@{{{{PATHSFILE}}}}']\n"
            f"init_command = ['{sys.executable}', 'tools/fetch_init.py', '--dry-run={{{{DRYRUN}}}}']\n"
        )
    (tree / ".lintrunner.toml").write_text(config)
    (tree / "pool.py").write_text("def size():\n\treturn 32   \n")
    (tree / "clean.py").write_text("def size():\n    return 32\n")
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    return tree


def lintrunner(tree: Path, *args: str) -> CommandOutput:
    program = shutil.which("lintrunner") or str(BIN / "lintrunner")
    if not Path(program).exists():
        pytest.skip("lintrunner is not installed")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "XDG_DATA_HOME": str(tree.parent / "xdg"), "HOME": str(tree.parent)}
    return run([program, *args], tree, env)


def test_lintrunner_messages_by_severity_and_path(tmp_path: Path) -> None:
    tree = lintrunner_tree(tmp_path, with_download=False)
    out = lintrunner(tree, "--output", "json", "pool.py", "clean.py")
    assert out.exit_code == 1
    parsed = lint_parser.parse(ParseInput(commands=(out,), tree=str(tree)))
    assert parsed.status == FAILED
    assert dict(parsed.counts) == {"messages": 2, "error": 1, "warning": 1, "files_flagged": 1}
    assert parsed.reason == "2 lint messages (1 error, 1 warning) in 1 file"
    assert "pool.py: 2 (SPACE x1, TABS x1)" in parsed.details
    assert "pool.py:2: error TABS/tab indentation: tab indentation" in parsed.details


def test_lintrunner_scrub_drops_embedded_files(tmp_path: Path) -> None:
    tree = lintrunner_tree(tmp_path, with_download=False)
    out = lintrunner(tree, "--output", "json", "pool.py")
    json_lines = [line for line in out.output.splitlines() if line.startswith("{")]
    assert json_lines and all('"original"' in line for line in json_lines)
    scrubbed = [lint_parser.scrub_line(line) for line in json_lines]
    for line in scrubbed:
        body = json.loads(line)
        assert "original" not in body and "replacement" not in body and body["code"] in {"TABS", "SPACE"}
    assert lint_parser.scrub_line("plain text\n") == "plain text\n"


def test_lintrunner_offline_init_is_reported_not_passed(tmp_path: Path) -> None:
    tree = lintrunner_tree(tmp_path, with_download=True)
    init = lintrunner(tree, "init")
    assert init.exit_code == 1 and "download failed" in init.output
    out = lintrunner(tree, "--output", "json", "clean.py")
    parsed = lint_parser.parse(ParseInput(commands=(init, out), tree=str(tree)))
    assert parsed.status == ERROR
    # The cause from the initializer's own output, not a bare "failed".
    assert parsed.reason.startswith("1 linter did not run (FETCHED: `lintrunner init` failed: download blocked: "
                                    "no network (download failed: ")
    assert any(d.startswith("FETCHED did not run:") for d in parsed.details)


def test_lint_command_failing_silently_is_an_error() -> None:
    out = CommandOutput(argv=("ruff", "check"), exit_code=2, output="ruff: config parse error\n")
    parsed = lint_parser.parse(ParseInput(commands=(out,), tree=""))
    assert parsed.status == ERROR and "without a lint message" in parsed.reason


# ------------------------------------------------------------------------------------- build and command


def test_build_failure_quotes_the_compiler_error(tmp_path: Path) -> None:
    (tmp_path / "broken.cpp").write_text("int main() { return undefined_name; }\n")
    out = run(["g++", "-c", "broken.cpp", "-o", "broken.o"], tmp_path)
    parsed = build_parser.parse(ParseInput(commands=(out,), tree=str(tmp_path)))
    assert parsed.status == FAILED
    assert parsed.reason.startswith("`g++ -c broken.cpp -o broken.o` exited 1: broken.cpp:1:21: error:")
    assert any("undefined_name" in d for d in parsed.details)


def test_command_counts_line_and_bad_counts_fail_even_on_exit_zero() -> None:
    good = CommandOutput(("stress",), 0, "round 1\nmpspatch-counts: rounds=1 crashes=0\n"
                                         "round 2\nmpspatch-counts: rounds=2 crashes=0\n")
    parsed = build_parser.parse(ParseInput(commands=(good,), tree=""))
    assert parsed.status == PASSED and dict(parsed.counts) == {"rounds": 2, "crashes": 0}
    bad = CommandOutput(("stress",), 0, "mpspatch-counts: rounds=5 crashes=2\n")
    parsed = build_parser.parse(ParseInput(commands=(bad,), tree=""))
    assert parsed.status == FAILED and parsed.reason == "reported crashes=2"
