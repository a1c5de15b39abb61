"""The structured merge of native_functions.yaml as pure text, and the driver entry point git runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from native_scenarios import ALIAS_NOTE, MPS, NATIVE_V10, RECORD_STREAM, XPU, entry, with_line_after

from mpspatch.commands import merge_driver
from mpspatch.model.native_functions import DIFF3, MERGE, ZDIFF3, Unstructured, expand, merge_text, parse


def test_parse_keys_entries_by_op_and_overload_and_dispatch_lines_by_backends() -> None:
    nodes = parse(NATIVE_V10 + "- func: add.Tensor(Tensor self, Tensor other) -> Tensor\n  variants: function\n")
    assert [n.key for n in nodes] == ["_cast_Byte", "abs", "record_stream", "_local_scalar_dense", "absolute",
                                      "add.Tensor", "#end"]
    abs_node = expand(nodes[1])
    assert [c.key for c in abs_node.children or ()] == ["device_check", "variants", "dispatch", "tags"]
    dispatch = (abs_node.children or ())[2]
    assert [c.key for c in dispatch.children or ()] == ["CompositeExplicitAutograd", "SparseCPU,SparseCUDA",
                                                          "SparseCsrCPU,SparseCsrCUDA,SparseCsrMeta"]
    assert "".join(line for n in nodes for line in n.lines) == NATIVE_V10 + (
        "- func: add.Tensor(Tensor self, Tensor other) -> Tensor\n  variants: function\n")


def test_different_backends_added_at_one_spot_both_land_in_upstreams_order() -> None:
    ours = with_line_after(NATIVE_V10, RECORD_STREAM, XPU)
    result = merge_text(NATIVE_V10, ours, with_line_after(NATIVE_V10, RECORD_STREAM, MPS))
    assert result.clean
    assert result.text == with_line_after(ours, XPU, MPS)  # upstream's text, the patch's line added


def test_an_addition_goes_before_what_followed_it_on_its_side() -> None:
    theirs = with_line_after(NATIVE_V10, "    CompositeExplicitAutograd: abs\n", "    MPS: abs_mps\n")
    ours = NATIVE_V10.replace("  tags: [core, pointwise]\n", "  tags: [core, pointwise, canonical]\n")
    result = merge_text(NATIVE_V10, ours, theirs)
    assert result.clean and result.text == with_line_after(ours, "    CompositeExplicitAutograd: abs\n",
                                                           "    MPS: abs_mps\n")


def test_new_entries_from_both_sides_and_edits_of_different_keys_compose() -> None:
    ours = NATIVE_V10.replace(ALIAS_NOTE, entry("_xpu_sync", "XPU: xpu_sync") + ALIAS_NOTE)
    theirs = NATIVE_V10.replace(ALIAS_NOTE, entry("_mps_sync", "MPS: mps_sync") + ALIAS_NOTE)
    theirs = theirs.replace("  variants: method\n", "  variants: method\n  device_check: NoCheck\n")
    result = merge_text(NATIVE_V10, ours, theirs)
    assert result.clean
    expected = ours.replace(ALIAS_NOTE, entry("_mps_sync", "MPS: mps_sync") + ALIAS_NOTE)
    assert result.text == expected.replace("  variants: method\n", "  variants: method\n  device_check: NoCheck\n")


@pytest.mark.parametrize(("style", "base_section"), [(MERGE, ""),
                                                     (DIFF3, "||||||| base (record_stream / variants)\n"
                                                                           "  variants: method\n")])
def test_one_key_changed_two_ways_is_a_conflict_named_after_it(style: str, base_section: str) -> None:
    ours = NATIVE_V10.replace("  variants: method\n", "  variants: function\n")
    theirs = NATIVE_V10.replace("  variants: method\n", "  variants: function, method\n")
    result = merge_text(NATIVE_V10, ours, theirs, style)
    assert result.conflicts == ("record_stream / variants",)
    assert ("<<<<<<< ours (record_stream / variants)\n  variants: function\n" + base_section +
            "=======\n  variants: function, method\n>>>>>>> theirs (record_stream / variants)\n") in result.text


def test_zdiff3_and_marker_size() -> None:
    ours = NATIVE_V10.replace("  variants: method\n", "  variants: method\n  # kept\n  tags: a\n")
    theirs = NATIVE_V10.replace("  variants: method\n", "  variants: method\n  # kept\n  tags: b\n")
    result = merge_text(NATIVE_V10, ours, theirs, ZDIFF3, marker_size=9)
    assert ("  # kept\n<<<<<<<<< ours (record_stream / tags)\n  tags: a\n||||||||| base (record_stream / tags)\n"
            "=========\n  tags: b\n>>>>>>>>> theirs (record_stream / tags)\n") in result.text


def test_a_backend_named_by_two_groups_after_the_merge_is_a_conflict() -> None:
    ours = with_line_after(NATIVE_V10, RECORD_STREAM, "    MPS, XPU: record_stream_generic\n")
    result = merge_text(NATIVE_V10, ours, with_line_after(NATIVE_V10, RECORD_STREAM, MPS))
    assert result.conflicts == ("record_stream / dispatch / MPS",)


def test_deleting_what_the_other_side_changed_is_a_conflict() -> None:
    ours = NATIVE_V10.replace("    CUDA: _local_scalar_dense_cuda\n", "")
    theirs = NATIVE_V10.replace("_local_scalar_dense_cuda", "_local_scalar_dense_cuda_v2")
    assert merge_text(NATIVE_V10, ours, theirs).conflicts == ("_local_scalar_dense / dispatch / CUDA",)
    both = merge_text(NATIVE_V10, ours, NATIVE_V10.replace("    MPS: _local_scalar_dense_mps\n", ""))
    assert both.clean and "_local_scalar_dense_cuda" not in both.text and "_local_scalar_dense_mps" not in both.text


def test_what_the_parser_cannot_be_sure_of_is_left_to_a_line_merge() -> None:
    with pytest.raises(Unstructured, match="appears twice"):
        parse(NATIVE_V10 + "\n- func: abs(Tensor self) -> Tensor\n")
    with pytest.raises(Unstructured, match="reorders"):
        moved = NATIVE_V10.replace("# DEPRECATED", "- func: zeta(Tensor self) -> Tensor\n\n# DEPRECATED")
        merge_text(NATIVE_V10 + "\n- func: zeta(Tensor self) -> Tensor\n", NATIVE_V10, moved)
    with pytest.raises(Unstructured, match="newline"):
        parse("- func: abs(Tensor self) -> Tensor")


def test_the_driver_writes_the_merge_into_ours_and_falls_back_to_git(tmp_path: Path) -> None:
    base, ours, theirs = tmp_path / "O", tmp_path / "A", tmp_path / "B"
    base.write_text(NATIVE_V10)
    ours.write_text(with_line_after(NATIVE_V10, RECORD_STREAM, XPU))
    theirs.write_text(with_line_after(NATIVE_V10, RECORD_STREAM, MPS))
    assert merge_driver.main(["--style", "diff3", str(base), str(ours), str(theirs), "7", "x.yaml"]) == 0
    assert MPS in ours.read_text() and XPU in ours.read_text()
    # Not a native_functions.yaml shape: git's own line merge, in the style asked for.
    base.write_text("  a\nb\n")
    ours.write_text("  a\nB1\n")
    theirs.write_text("  a\nB2\n")
    assert merge_driver.main(["--style", "diff3", str(base), str(ours), str(theirs), "9", "x.yaml"]) == 1
    assert ours.read_text() == "  a\n<<<<<<<<< ours\nB1\n||||||||| base\nb\n=========\nB2\n>>>>>>>>> theirs\n"


def test_the_driver_refuses_bad_arguments() -> None:
    assert merge_driver.main(["--style", "diff4", "O", "A", "B"]) == 2
    assert merge_driver.main(["O", "A"]) == 2


def test_only_the_entries_between_the_first_and_last_difference_are_read() -> None:
    # A stray indented line far from the changes does not stop the merge: that part is the same on all sides.
    odd = NATIVE_V10.replace("# DEPRECATED. DO NOT USE\n", "# DEPRECATED. DO NOT USE\n   odd: indented\n")
    ours = with_line_after(odd, RECORD_STREAM, XPU)
    result = merge_text(odd, ours, with_line_after(odd, RECORD_STREAM, MPS))
    assert result.clean and result.text == with_line_after(ours, XPU, MPS)
    # Changes at the very first and last lines merge too.
    first = "# header edited upstream\n" + NATIVE_V10
    last = NATIVE_V10 + "\n" + entry("zeta", "MPS: zeta_mps").rstrip("\n") + "\n"
    assert merge_text(NATIVE_V10, first, last).text == "# header edited upstream\n" + last


def test_a_line_upstream_already_added_next_to_another_merges_to_upstreams_text() -> None:
    # PyTorch 2.15's record_stream: upstream landed the patch's MPS line together with an XPU line.
    ours = with_line_after(NATIVE_V10, RECORD_STREAM, MPS + XPU)
    result = merge_text(NATIVE_V10, ours, with_line_after(NATIVE_V10, RECORD_STREAM, MPS))
    assert result.clean and result.text == ours
