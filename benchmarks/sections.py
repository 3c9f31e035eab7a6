"""The one writer of generated Markdown in BENCHMARKS.md and README.md.

A benchmark script builds its Markdown text, then puts it into the file with one of:

- `write_marked(path, begin, end, body)`: replaces the block between two HTML comment
  markers (README tables); the markers must be there.
- `write_section(path, heading, section)`: replaces the section under a ``## `` heading
  (up to the next ``## `` heading), or appends it.
- `append(path, text)`: appends a section after a blank line (`show_and_append`: and
  prints it).

The text functions below them (`replace_marked`, `replace_heading`, `insert_after`,
`append_text`, `replace_summary_rows`) are pure, for scripts that edit several parts of
one file at once (benchmarks/threshold.py: its section, the block nested in it, and
its rows of the summary table at the top of BENCHMARKS.md).

Scripts run as ``python benchmarks/<name>.py`` import it as ``import sections``.
"""

import os
import re

# The text of a BENCHMARKS.md that does not exist yet.
NEW_FILE = "# Benchmarks\n"

# The first line of the summary table at the top of BENCHMARKS.md.
SUMMARY_HEADER = "| result | value | section |"


# ------------------------------------------------------------------- files
def read(path, new_file=None):
    """The text of `path`; `new_file` instead if given and `path` does not exist."""
    if new_file is not None and not os.path.exists(path):
        return new_file
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def write_marked(path, begin, end, body):
    """Replaces the block from `begin` to `end` in the file `path` by `body` between
    the same markers. ValueError naming the file and the markers if one is missing."""
    text = replace_marked(read(path), begin, end, body)
    if text is None:
        raise ValueError(f"{path!r} has no {begin} ... {end} markers")
    write(path, text)


def write_section(path, heading, section):
    """Replaces the `heading` section of `path` by `section` (`replace_heading`);
    a missing file starts as `NEW_FILE`."""
    write(path, replace_heading(read(path, NEW_FILE), heading, section))


def append(path, text):
    """Appends a newline and `text` to `path` (created if missing)."""
    with open(path, "a") as f:
        f.write("\n" + text)


def show_and_append(lines, path=None):
    """Prints the Markdown `lines` as one text and, when `path` is given, appends it there."""
    text = "\n".join(lines) + "\n"
    print(text)
    if path:
        append(path, text)


# -------------------------------------------------------------------- text
def replace_marked(text, begin, end, body):
    """`text` with the block from the first `begin` to the next `end` (markers
    included) replaced by `begin`, `body` and `end` on their own lines; None if `text`
    lacks either marker."""
    if begin not in text or end not in text:
        return None
    head, rest = text.split(begin, 1)
    return "\n".join([head + begin, body, end + rest.split(end, 1)[1]])


def heading_span(text, heading):
    """(start, end) of the first section whose heading line starts with `heading`: up
    to the next line starting with ``## `` or the end of `text`; None if absent."""
    match = re.search(rf"^{re.escape(heading)}.*?(?=^## |\Z)", text, re.M | re.S)
    return match.span() if match else None


def append_text(text, section):
    """`text`, a blank line, `section`, one final newline."""
    return text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"


def replace_heading(text, heading, section):
    """`text` with the `heading` section replaced by `section` (one blank line before
    the next heading), or with `section` appended if there is no such heading."""
    span = heading_span(text, heading)
    if span is None:
        return append_text(text, section)
    start, end = span
    gap = "\n" if end < len(text) else ""
    return text[:start] + section.rstrip("\n") + "\n" + gap + text[end:]


def insert_after(text, heading, block):
    """`text` with `block` inserted at the end of the `heading` section (at the end of
    `text` if there is none), between blank lines."""
    span = heading_span(text, heading)
    at = span[1] if span else len(text)
    return text[:at].rstrip("\n") + "\n\n" + block + "\n\n" + text[at:]


def replace_summary_rows(text, is_ours, rows):
    """`text` with the rows `is_ours` accepts dropped from its summary table (the one
    headed `SUMMARY_HEADER`, created before the first ``## `` section if missing) and
    `rows` appended to it."""
    lines = text.split("\n")
    start = next((i for i, l in enumerate(lines) if l.startswith("| result |")), None)
    if start is None:
        first_section = next((i for i, l in enumerate(lines) if l.startswith("## ")), len(lines))
        lines[first_section:first_section] = [SUMMARY_HEADER, "|---|---|---|", ""]
        start = first_section
    end = start + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    kept = [l for l in lines[start + 2:end] if not is_ours(l)]
    lines[start + 2:end] = kept + rows
    return "\n".join(lines)
