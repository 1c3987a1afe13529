"""docs/reference/checks.md documents exactly the system check ids the package can emit.

The ids are collected from the source: every string literal such as ``"edgejobs.E001"`` in
``django_edgejobs/**/*.py`` (checks.py, tasks.py, ...). Prose that mentions an id without
quotes (a docstring's ``edgejobs.E009``) does not count.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "django_edgejobs"
CHECKS_MD = ROOT / "docs" / "reference" / "checks.md"

ID_LITERAL = re.compile(r"""["'](edgejobs\.[A-Z]\d{3})["']""")
ID_IN_DOCS = re.compile(r"\bedgejobs\.[A-Z]\d{3}\b")


def ids_in_code() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for check_id in ID_LITERAL.findall(path.read_text(encoding="utf-8")):
            found.setdefault(check_id, []).append(str(path.relative_to(ROOT)))
    return found


def docs_text() -> str:
    return CHECKS_MD.read_text(encoding="utf-8")


def table_ids(text: str) -> list[str]:
    """The id of each row of the summary table (its first column)."""
    return [m.group(1) for m in re.finditer(r"^\| \[?`(edgejobs\.[A-Z]\d{3})`", text, re.M)]


def section_ids(text: str) -> list[str]:
    return re.findall(r"^### (edgejobs\.[A-Z]\d{3})\s*$", text, re.M)


def test_the_source_scan_finds_the_known_checks() -> None:
    # Guards the scan itself: if ids were spelled another way, the tests below would pass empty.
    found = ids_in_code()
    for check_id in ("edgejobs.E001", "edgejobs.W002", "edgejobs.E009", "edgejobs.E101",
                     "edgejobs.E102", "edgejobs.W101"):
        assert check_id in found, check_id
    assert any(path.endswith("tasks.py") for paths in found.values() for path in paths)


def test_every_check_id_in_the_code_is_documented() -> None:
    text = docs_text()
    rows, sections = table_ids(text), section_ids(text)
    missing_rows = {i: where for i, where in ids_in_code().items() if i not in rows}
    missing_sections = {i: where for i, where in ids_in_code().items() if i not in sections}
    assert not missing_rows, f"no row in the table of {CHECKS_MD.name}: {missing_rows}"
    assert not missing_sections, f"no '### <id>' section in {CHECKS_MD.name}: {missing_sections}"


def test_checks_md_documents_no_id_the_code_lacks() -> None:
    unknown = sorted(set(ID_IN_DOCS.findall(docs_text())) - set(ids_in_code()))
    assert not unknown, f"{CHECKS_MD.name} mentions ids the code never emits: {unknown}"


def test_each_id_has_one_row_and_one_section() -> None:
    text = docs_text()
    for name, ids in (("table rows", table_ids(text)), ("sections", section_ids(text))):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        assert not repeated, f"{name} repeated in {CHECKS_MD.name}: {repeated}"


def test_table_links_point_at_sections_of_the_page() -> None:
    text = docs_text()
    for check_id, anchor in re.findall(r"^\| \[`(edgejobs\.[A-Z]\d{3})`\]\(([^)]*)\)", text, re.M):
        assert anchor == "#" + check_id.replace(".", "").lower(), (check_id, anchor)
