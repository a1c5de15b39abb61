"""Config loading: the shipped file, relative paths, and one clear exit-2 line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_config

from mpspatch.foundation.config import find_config, load_config
from mpspatch.foundation.errors import ConfigError
from mpspatch.foundation.globs import matches_any

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_describes_the_real_job() -> None:
    config = load_config(REPO_ROOT / "mpspatch.toml")
    assert config.upstream.url == "https://github.com/pytorch/pytorch.git"
    assert (config.upstream.base, config.upstream.target) == ("v2.9.1", "viable/strict")
    assert config.series.patches == (REPO_ROOT / "patches/cumulative-v2.9.1-to-mps-stream-pool.patch",)
    assert [c.name for c in config.categories] == ["Core MPS", "Operations", "Python bindings", "Tests"]
    assert config.series.lock == REPO_ROOT / "patches/series.lock"
    assert config.split.max_lines == 2000


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path / "project", patches=["patches/a.patch"])
    monkeypatch.chdir(tmp_path)  # a different cwd must not matter
    config = load_config(path)
    assert config.upstream.checkout == (tmp_path / "upstream").resolve()
    assert config.series.patches == ((tmp_path / "project/patches/a.patch").resolve(),)
    assert config.evidence_dir == tmp_path / "project/audit/runs"


def test_found_upward_from_a_subfolder(tmp_path: Path) -> None:
    path = write_config(tmp_path, patches=["a.patch"])
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) == path
    with pytest.raises(ConfigError, match=r"no mpspatch\.toml"):
        find_config(Path("/"))


@pytest.mark.parametrize(
    ("extra_or_edit", "expected"),
    [
        (
            ("[upstream]\n", "[upstream]\nchekout = 'x'\n"),
            "[upstream] has unknown key 'chekout'; did you mean 'checkout'?",
        ),
        (('base = "v1.0"', "base = 10"), "[upstream].base must be a string, not an integer; fix: base ="),
        (('base = "v1.0"\n', ""), "[upstream].base is missing; fix: base = "),
        (('patches = ["a.patch"]', "patches = []"), "[series].patches is empty"),
        (('patches = ["a.patch"]', "patches = [1]"), "[series].patches must be a list of strings"),
        (('"Tests" = ["test/test_mps.py"]', '"Tests" = ["test/[abc"]'),
         "[categories.Tests]: bad glob 'test/[abc': unclosed '['"),
        (("", '[[stages]]\nname = "t"\nkind = "tsn"\nrun = [["x"]]\n'), "kind 'tsn' is unknown; did you mean 'tsan'?"),
        (("", '[[stages]]\nname = "t"\nkind = "tests"\nrun = "make"\n'), "[stages.t].run must be a list, not a string"),
        (("", '[[stages]]\nname = "t"\nkind = "tests"\nrun = [["x"]]\ntimeout = true\n'), "timeout must be a number"),
        (("", '[[stages]]\nname = "t"\nkind = "tests"\nrun = [["x"]]\n[[stages]]\nname = "t"\nkind = "build"\n'
          'run = [["y"]]\n'), "name 't' is used twice"),
        (("", '[[stages]]\nname = "l"\nkind = "lint"\nrun = [["x"]]\nsparse = ["tools/linter"]\n'),
         "[stages.l].sparse only applies to a stage with full_tree = false"),
        (("", '[[stages]]\nname = "l"\nkind = "lint"\nrun = [["x"]]\nfull_tree = false\nsparse = ["../x"]\n'),
         "[stages.l].sparse '../x' is not a folder or file path inside the tree"),
        (("", '[[stages]]\nname = "l"\nkind = "lint"\nrun = [["x"]]\nfull_tree = false\nsparse = ["tools/*.py"]\n'),
         "'tools/*.py' is not a folder or file path inside the tree"),
        (("", "[split]\nmax_lines = 0\n"), "[split].max_lines must be positive"),
        (("[upstream]", "[upstream\n"), "not valid TOML"),
        (("", '[rebase]\nconflict_style = "diff4"\n'),
         "[rebase].conflict_style is 'diff4', not one of 'merge', 'diff3', 'zdiff3'; fix: conflict_style = \"zdiff3\""),
        (("", '[rebase]\nconflict_styel = "diff3"\n'), "did you mean 'conflict_style'?"),
        (("", '[rebase.merge_drivers]\n"*.mm" = ""\n'), "[rebase].merge_drivers.\"*.mm\" must be a command"),
        (("", '[rebase.merge_drivers]\n"!*.mm" = "tool %A"\n'), "must be a gitattributes pattern without spaces"),
    ],
)
def test_mistakes_name_file_key_and_fix(tmp_path: Path, extra_or_edit: tuple[str, str], expected: str) -> None:
    path = write_config(tmp_path, patches=["a.patch"])
    old, new = extra_or_edit
    text = path.read_text()
    path.write_text(text.replace(old, new, 1) if old else text + new)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == 2
    assert str(path) in info.value.message
    assert expected in info.value.message
    assert "\n" not in info.value.message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "mpspatch.toml")


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("aten/src/ATen/mps/**", "aten/src/ATen/mps/a/b.mm", True),
        ("aten/src/ATen/mps/*.mm", "aten/src/ATen/mps/a/b.mm", False),
        ("**/*.h", "x.h", True),
        ("**/*.h", "a/b/x.h", True),
        ("test/test_?ps.py", "test/test_mps.py", True),
        ("test/test_[mn]ps.py", "test/test_nps.py", True),
        ("aten/[!M]*.h", "aten/MPSStream.h", False),
        ("aten/[!M]*.h", "aten/Other.h", True),
        ("[]]x", "]x", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a/**b", "a/c/xb", False),
        ("a/**b", "a/xb", True),
        ("a/**/b", "a/b", True),
        ("*", ".clang-format", True),
        ("aten/**", "aten", False),
        ("aten/**", "aten/.hidden/x", True),
        ("aten/x.h", "aten/x.h", True),
        ("aten/x.h", "aten/x.hh", False),
    ],
)
def test_glob_semantics(pattern: str, path: str, hit: bool) -> None:
    assert matches_any(path, (pattern,)) is hit


@pytest.mark.parametrize("pattern", ["aten/**", "aten/x.h", "a.b/**"])
@pytest.mark.parametrize("path", ["aten", "aten/", "aten/x.h", "aten/x", "aten/a/b", "a.b/c", "axb/c", "aten/.x"])
def test_literal_shortcuts_agree_with_wcmatch(pattern: str, path: str) -> None:
    from wcmatch import glob

    assert matches_any(path, (pattern,)) is glob.globmatch(path, pattern,
                                                           flags=glob.GLOBSTAR | glob.DOTGLOB | glob.FORCEUNIX)


def test_rebase_merge_setup_is_read_in_order(tmp_path: Path) -> None:
    path = write_config(tmp_path, patches=["a.patch"], extra='[rebase]\nconflict_style = "zdiff3"\n'
                        '[rebase.merge_drivers]\n"*.mm" = "tool-a %O %A %B"\n"*.h" = "tool-b %A"\n')
    rebase = load_config(path).rebase
    assert rebase.conflict_style == "zdiff3"
    assert [(d.pattern, d.command) for d in rebase.merge_drivers] == [("*.mm", "tool-a %O %A %B"), ("*.h", "tool-b %A")]
    assert load_config(write_config(tmp_path / "plain", patches=["a.patch"])).rebase.conflict_style == "merge"
