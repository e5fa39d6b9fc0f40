"""docs/PROTOCOL.md against the code that cites it.

The rule table (``harness.spec.RULES``), the error classes (``harness.errors``) and
the wire vectors (``harness.vectors``) each have a written form in docs/PROTOCOL.md;
these tests fail when the two drift apart, and when a reference to the spec or to a
docs page (``docs/PROTOCOL.md#f2``, ``docs/server.md``, a Markdown link) points at a file
or an anchor that does not exist.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import ERROR_CLASSES
from harness.spec import RULES, SPEC_PATH
from harness.vectors import GUIDE_EXCHANGES

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / SPEC_PATH
#: The sections after the rules' own, in this order.
TRAILING_SECTIONS = ["Error codes", "Wire vectors"]
#: Where references to the spec and the docs pages are looked for.
REFERENCE_ROOTS = ["harness", "docs", "fuzz", "benchmarks", "README.md"]
#: Where the spec is cited by its path (``docs/PROTOCOL.md``), never by a bare file name.
CITING_ROOTS = ["harness", "fuzz", "benchmarks", "tests", "README.md"]
TEXT_SUFFIXES = {".py", ".md", ".lua", ".toml", ".txt"}
SKIPPED_DIRS = {"__pycache__", "work", "artifacts", "seeds", "regressions"}

_ANCHOR = re.compile(r'<a (?:id|name)="([^"]+)"></a>')
_RULE_LINE = re.compile(r'^<a id="([^"]+)"></a>\*\*([A-Z][0-9]+)\.\*\* (.*)$')
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
_SPEC_REF = re.compile(r"PROTOCOL\.md#([\w-]+)")
_DOCS_REF = re.compile(r"(?<![\w./-])docs/([\w.-]+\.md)(?:#([\w-]+))?")
_MD_LINK = re.compile(r"\]\(([^()\s]+)\)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    text: str
    in_code: bool


def _lines(text: str) -> list[Line]:
    """The lines of a Markdown text, each marked inside or outside a fenced code block."""
    out: list[Line] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            out.append(Line(number, line, True))
            fenced = not fenced
            continue
        out.append(Line(number, line, fenced))
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N", "M"))
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every anchor a link into ``path`` can name: explicit ``<a id>`` ones and headings'."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _lines(path.read_text(encoding="utf-8")):
        if line.in_code:
            continue
        anchors.update(_ANCHOR.findall(line.text))
        heading = _HEADING.match(line.text)
        if heading:
            slug = _slug(heading.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _sections(text: str) -> Iterator[tuple[str, Line]]:
    """Each line outside code blocks with the ``##`` section it is in ("" before the first)."""
    section = ""
    for line in _lines(text):
        if not line.in_code and line.text.startswith("## "):
            section = line.text[3:].strip()
        yield section, line


def _section_lines(text: str, name: str) -> list[Line]:
    return [line for section, line in _sections(text) if section == name]


@pytest.fixture(scope="module")
def spec_text() -> str:
    assert SPEC.is_file(), f"{SPEC_PATH} is missing"
    return SPEC.read_text(encoding="utf-8")


# -- the rules -----------------------------------------------------------------------


def test_spec_sections_are_the_rule_sections_in_order_then_error_codes_and_wire_vectors(
    spec_text: str,
) -> None:
    rule_sections = list(dict.fromkeys(rule.section for rule in RULES.values()))
    headings = [
        line.text[3:].strip()
        for line in _lines(spec_text)
        if not line.in_code and line.text.startswith("## ")
    ]
    assert headings == rule_sections + TRAILING_SECTIONS


def test_spec_has_every_rule_anchor_in_its_section_in_table_order_and_no_other(spec_text: str) -> None:
    found: list[tuple[str, str]] = []
    for section, line in _sections(spec_text):
        match = _RULE_LINE.match(line.text)
        if match and not line.in_code:
            anchor, rule_id, _ = match.groups()
            assert anchor == rule_id.lower(), f"line {line.number}: anchor {anchor!r} for rule {rule_id}"
            found.append((rule_id, section))
    assert found == [(rule.id, rule.section) for rule in RULES.values()]
    # Vice versa: no rule-style anchor in the document that the table does not know.
    anchors = [a for line in _lines(spec_text) if not line.in_code for a in _ANCHOR.findall(line.text)]
    assert sorted(anchors) == sorted(rule.anchor for rule in RULES.values())


def test_spec_rule_lines_start_with_the_rule_table_text(spec_text: str) -> None:
    lines = {
        match.group(2): (line.number, match.group(3))
        for line in _lines(spec_text)
        if not line.in_code and (match := _RULE_LINE.match(line.text))
    }
    for rule in RULES.values():
        number, sentence = lines[rule.id]
        expected = rule.text[:1].upper() + rule.text[1:] + "."
        assert sentence.startswith(expected), (
            f"{SPEC_PATH} line {number}: rule {rule.id} reads {sentence!r}, harness/spec.py says {expected!r}"
        )


def test_spec_every_rule_has_an_explanation_after_its_line(spec_text: str) -> None:
    lines = _lines(spec_text)
    for index, line in enumerate(lines):
        match = _RULE_LINE.match(line.text)
        if match:
            following = lines[index + 1].text.strip() if index + 1 < len(lines) else ""
            assert following and not _RULE_LINE.match(following), (
                f"{SPEC_PATH} line {line.number}: rule {match.group(2)} has no explanation"
            )


# -- error codes ---------------------------------------------------------------------


def _error_table(spec_text: str) -> dict[str, list[str]]:
    """The ``## Error codes`` table: code -> its cells (code, class, rule, when, action)."""
    rows: dict[str, list[str]] = {}
    for line in _section_lines(spec_text, "Error codes"):
        if line.in_code or not line.text.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.text.strip().strip("|").split("|")]
        code = cells[0].strip("`")
        if code in ("code", "") or set(code) <= set("-: "):
            continue
        assert code not in rows, f"{SPEC_PATH} line {line.number}: error code {code!r} listed twice"
        rows[code] = cells
    return rows


def test_spec_error_codes_table_lists_every_error_class_with_its_rule(spec_text: str) -> None:
    rows = _error_table(spec_text)
    assert set(ERROR_CLASSES) <= set(rows), f"not in the table: {sorted(set(ERROR_CLASSES) - set(rows))}"
    for code, cells in rows.items():
        assert len(cells) == 5, f"error code {code!r}: expected 5 columns, got {cells}"
        _, cls_cell, rule_cell, when, action = cells
        if code in ERROR_CLASSES:
            assert cls_cell == f"`{ERROR_CLASSES[code].__name__}`", f"{code}: class cell {cls_cell!r}"
        rule_ids = re.findall(r"\[([A-Z][0-9]+)\]\(#([a-z0-9]+)\)", rule_cell)
        assert rule_ids, f"{code}: no rule named in {rule_cell!r}"
        for rule_id, anchor in rule_ids:
            assert rule_id in RULES, f"{code}: no rule {rule_id} ({rule_cell!r})"
            assert RULES[rule_id].anchor == anchor, f"{code}: bad rule link {rule_cell!r}"
        assert when and action, f"{code}: empty cells"


def test_spec_error_codes_follow_the_table_order_of_the_codec(spec_text: str) -> None:
    codec_codes = [code for code in _error_table(spec_text) if code in ERROR_CLASSES]
    assert codec_codes == list(ERROR_CLASSES)


# -- wire vectors --------------------------------------------------------------------


def test_spec_wire_vectors_equal_harness_vectors(spec_text: str) -> None:
    requests: list[bytes] = []
    responses: list[bytes] = []
    for line in _section_lines(spec_text, "Wire vectors"):
        if not line.in_code:
            continue
        kind, _, literal = line.text.partition(" ")
        if kind not in ("request", "response"):
            continue
        value = ast.literal_eval(literal.strip())
        assert isinstance(value, bytes), f"{SPEC_PATH} line {line.number}: not a bytes literal"
        (requests if kind == "request" else responses).append(value)
    assert list(zip(requests, responses, strict=True)) == list(GUIDE_EXCHANGES.values())


# -- references ----------------------------------------------------------------------


def _files(roots: list[str]) -> Iterator[Path]:
    for name in roots:
        path = ROOT / name
        if path.is_file():
            yield path
            continue
        for file in sorted(path.rglob("*")):
            parts = set(file.relative_to(ROOT).parts)
            if file.is_file() and file.suffix in TEXT_SUFFIXES and not parts & SKIPPED_DIRS:
                yield file


def _where(path: Path, text: str, start: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, start) + 1}"


def _check_target(target: Path, anchor: str | None, where: str, problems: list[str]) -> None:
    if not target.exists():
        problems.append(
            f"{where}: {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} does not exist"
        )
    elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
        problems.append(f"{where}: no anchor #{anchor} in {target.relative_to(ROOT)}")


def test_references_to_the_spec_and_docs_pages_resolve() -> None:
    problems: list[str] = []
    for path in _files(REFERENCE_ROOTS):
        text = path.read_text(encoding="utf-8")
        for match in _SPEC_REF.finditer(text):
            _check_target(SPEC, match.group(1), _where(path, text, match.start()), problems)
        for match in _DOCS_REF.finditer(text):
            target = ROOT / "docs" / match.group(1)
            _check_target(target, match.group(2), _where(path, text, match.start()), problems)
    problems = list(dict.fromkeys(problems))  # docs/PROTOCOL.md#x matches both patterns
    assert not problems, "\n".join(problems)


def test_markdown_links_in_readme_and_docs_resolve() -> None:
    problems: list[str] = []
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for line in _lines(page.read_text(encoding="utf-8")):
            if line.in_code:
                continue
            for link in _MD_LINK.findall(_CODE_SPAN.sub("", line.text)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
                    continue
                file_part, _, anchor = link.partition("#")
                target = (page.parent / file_part).resolve() if file_part else page
                _check_target(target, anchor or None, f"{page.relative_to(ROOT)}:{line.number}", problems)
    assert not problems, "\n".join(problems)


def test_code_cites_the_spec_by_its_path() -> None:
    bare = re.compile(r"(?<!docs/)PROTOCOL\.md")
    problems = []
    for path in _files(CITING_ROOTS):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        problems += [f"{_where(path, text, m.start())}: cite {SPEC_PATH}" for m in bare.finditer(text)]
    assert not problems, "\n".join(problems)


def test_docs_pages_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {Path(link.partition("#")[0]).name for link in _MD_LINK.findall(readme)}
    missing = [page.name for page in sorted((ROOT / "docs").glob("*.md")) if page.name not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"
