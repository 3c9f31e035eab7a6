"""benchmarks/sections.py: the one writer of generated parts of BENCHMARKS.md / README.md."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import sections  # noqa: E402

B, E = "<!-- t:begin -->", "<!-- t:end -->"
DOC = "# Doc\n\nintro\n\n## One\n\nold one\n\n## Two\n\nold two\n"


def test_replace_marked_replaces_only_between_the_markers():
    text = f"head\n{B}\nold\nlines\n{E}\ntail\n"
    assert sections.replace_marked(text, B, E, "new") == f"head\n{B}\nnew\n{E}\ntail\n"


def test_replace_marked_is_a_fixed_point_for_the_current_body():
    text = f"head\n{B}\nsame\n{E}\ntail\n"
    assert sections.replace_marked(text, B, E, "same") == text


@pytest.mark.parametrize("text", ["", f"only {B}\n", f"only {E}\n"])
def test_replace_marked_without_both_markers_is_none(text):
    assert sections.replace_marked(text, B, E, "new") is None


def test_replace_heading_in_the_middle_keeps_one_blank_line_before_the_next():
    got = sections.replace_heading(DOC, "## One", "## One\n\nnew one\n")
    assert got == "# Doc\n\nintro\n\n## One\n\nnew one\n\n## Two\n\nold two\n"


def test_replace_heading_at_the_end_ends_with_one_newline():
    got = sections.replace_heading(DOC, "## Two", "## Two\n\nnew two\n\n\n")
    assert got == "# Doc\n\nintro\n\n## One\n\nold one\n\n## Two\n\nnew two\n"


def test_replace_heading_appends_a_missing_section():
    got = sections.replace_heading(DOC, "## Three", "## Three\n\nthree\n")
    assert got == DOC + "\n## Three\n\nthree\n"


def test_heading_matches_a_heading_line_prefix_not_text_inside_a_line():
    text = "see ## One here\n\n## One (long title)\n\nbody\n"
    assert sections.heading_span(text, "## One") == (text.index("## One ("), len(text))


def test_insert_after_puts_the_block_at_the_end_of_its_section():
    got = sections.insert_after(DOC, "## One", "BLOCK")
    assert got == "# Doc\n\nintro\n\n## One\n\nold one\n\nBLOCK\n\n## Two\n\nold two\n"


def test_insert_after_a_missing_section_goes_to_the_end():
    assert sections.insert_after("# Doc\n", "## Nine", "BLOCK") == "# Doc\n\nBLOCK\n\n"


def test_summary_rows_replace_ours_and_keep_the_others():
    text = f"# B\n\n{sections.SUMMARY_HEADER}\n|---|---|---|\n| a | 1 | X |\n| b | 2 | Y |\n\n## X\n"
    got = sections.replace_summary_rows(text, lambda row: "X |" in row, ["| c | 3 | X |"])
    assert got == (f"# B\n\n{sections.SUMMARY_HEADER}\n|---|---|---|\n| b | 2 | Y |\n"
                   "| c | 3 | X |\n\n## X\n")


def test_summary_table_is_created_before_the_first_section():
    got = sections.replace_summary_rows(DOC, lambda row: False, ["| r | v | One |"])
    assert got == DOC.replace(
        "## One", f"{sections.SUMMARY_HEADER}\n|---|---|---|\n| r | v | One |\n\n## One", 1)


def test_write_marked_error_names_the_file_and_markers(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("no markers\n")
    with pytest.raises(ValueError, match=f"README.md.*{B}.*{E}"):
        sections.write_marked(str(path), B, E, "x")
    assert path.read_text() == "no markers\n"


def test_write_section_starts_a_missing_file_as_benchmarks(tmp_path):
    path = str(tmp_path / "BENCHMARKS.md")
    sections.write_section(path, "## A", "## A\n\nbody\n")
    assert open(path).read() == "# Benchmarks\n\n## A\n\nbody\n"


def test_append_adds_a_newline_then_the_text(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n")
    sections.append(str(path), "## A\n")
    assert path.read_text() == "# Benchmarks\n\n## A\n"
