"""The one diff parser and C-path unquoter, shared by the series, split and history."""

from __future__ import annotations

from pathlib import Path

from support import Repo

from mpspatch.foundation.ids import commit_sha
from mpspatch.model import absorbed, history
from mpspatch.model.diff import hunks_by_path, unquote_path
from mpspatch.model.series import parse_patch
from mpspatch.model.workspace import resolve_ref

CAFE = "docs/caf\u00e9.md"


def test_hunks_by_path_handles_added_deleted_and_no_newline_files() -> None:
    text = (
        "diff --git a/new.h b/new.h\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/new.h\n"
        "@@ -0,0 +1,2 @@\n+one\n+--- not a header\n"
        "diff --git a/old.h b/old.h\ndeleted file mode 100644\n--- a/old.h\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
        "\\ No newline at end of file\n"
    )
    parsed = hunks_by_path(text)
    assert parsed["new.h"][0].added_lines == ["one", "--- not a header"]
    assert parsed["old.h"][0].removed_lines == ["bye"] and parsed["old.h"][0].after == []


def test_unquote_path_reads_octal_escapes_as_utf8_bytes() -> None:
    assert unquote_path('"docs/caf\\303\\251.md"') == CAFE
    assert unquote_path('"a\\tb \\"q\\".h"') == 'a\tb "q".h'
    assert unquote_path("plain/path.h") == "plain/path.h"


def test_a_non_ascii_path_is_the_same_path_for_the_series_and_for_history(tmp_path: Path) -> None:
    up = Repo.create(tmp_path / "up")
    up.write(CAFE, "one\ntwo\nthree\n")
    up.commit("base", tag="v1.0")
    up.git("checkout", "-q", "-b", "series")
    up.write(CAFE, "one\n2\nthree\n")
    series = commit_sha(up.commit("series").strip())
    up.git("checkout", "-q", "main")
    up.write(CAFE, "one\n2\nthree\n")
    up.commit("the same change lands upstream")
    # git's default quoting, as in a patch a user made: the name is C-quoted with UTF-8 octal escapes.
    quoted = up.git("diff", "--full-index", "v1.0", "series")
    assert '"b/docs/caf\\303\\251.md"' in quoted
    patch = tmp_path / "cafe.patch"
    patch.write_text(quoted, encoding="utf-8")
    assert [f.path for f in parse_patch(patch).files] == [CAFE]

    base, onto = resolve_ref(up.path, "v1.0"), resolve_ref(up.path, "main")
    forecast = history.merge_forecast(up.path, base, [series], onto)
    commits = history.upstream_commits(up.path, base, onto, [CAFE])
    found = absorbed.already_upstream(up.path, base, forecast.series, onto, forecast.result_tree, commits,
                                     series_diff=quoted)
    assert [(f.path, f.whole) for f in found.files] == [(CAFE, True)]
