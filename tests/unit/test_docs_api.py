"""docs/reference/api.md agrees with the code where that is cheap to check.

- The exception tree (the code block under "## Exceptions") lists every exception class of
  ``django_edgejobs.exceptions`` exactly once, under its real base class, with its other bases
  in parentheses; and the page says which of them the package itself exports.
- No table of the page has the same row twice (rows are keyed by their first two cells, so
  the events table may list one event type for several occasions).
"""

from __future__ import annotations

import builtins
import inspect
import re
from pathlib import Path

import django_edgejobs
from django_edgejobs import exceptions

API_MD = Path(__file__).resolve().parents[2] / "docs" / "reference" / "api.md"
TREE_LINE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<name>\w+)(?:\((?P<extra>[\w, ]+)\))?(?:\s|$)")


def text() -> str:
    return API_MD.read_text(encoding="utf-8")


def section(title: str) -> str:
    page = text()
    start = page.index(f"\n## {title}\n")
    end = page.find("\n## ", start + 1)
    return page[start:end if end != -1 else None]


def tree() -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(class, parent, other bases) for each line of the exception tree."""
    block = re.search(r"```\n(.*?)```", section("Exceptions"), re.S)
    assert block, "no code block in the Exceptions section"
    rows: list[tuple[str, str | None, tuple[str, ...]]] = []
    stack: list[str] = []
    for line in block.group(1).splitlines():
        match = TREE_LINE.match(line)
        assert match, f"cannot read this line of the exception tree: {line!r}"
        indent = match["indent"]
        assert len(indent) % 4 == 0, f"misaligned: {line!r}"
        depth = len(indent) // 4
        assert depth <= len(stack), f"no parent for: {line!r}"
        del stack[depth:]
        extra = tuple(e.strip() for e in (match["extra"] or "").split(",") if e.strip())
        rows.append((match["name"], stack[-1] if stack else None, extra))
        stack.append(match["name"])
    return rows


def resolve(name: str) -> type:
    found = getattr(exceptions, name, None) or getattr(builtins, name, None)
    assert isinstance(found, type), f"{name} is neither in django_edgejobs.exceptions nor a builtin"
    return found


def module_exceptions() -> set[str]:
    return {name for name, obj in inspect.getmembers(exceptions, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__ == exceptions.__name__}


def package_exceptions() -> set[str]:
    return {name for name in django_edgejobs.__all__
            if isinstance(getattr(django_edgejobs, name), type)
            and issubclass(getattr(django_edgejobs, name), BaseException)}


def test_the_page_has_one_exception_tree() -> None:
    assert text().count("\n## Exceptions\n") == 1
    assert len(re.findall(r"── EdgeJobsError\b", text())) == 1


def test_every_exception_class_is_in_the_tree_once() -> None:
    listed = [name for name, parent, _ in tree() if parent is not None]
    repeated = sorted({n for n in listed if listed.count(n) > 1})
    assert not repeated, f"listed more than once: {repeated}"
    assert set(listed) == module_exceptions()
    assert package_exceptions() <= set(listed)


def test_each_class_sits_under_its_real_bases() -> None:
    for name, parent, extra in tree():
        cls = resolve(name)
        if parent is None:
            assert cls in (Exception, BaseException), f"{name} is not a root of the tree"
            continue
        expected = tuple(resolve(n) for n in (parent, *extra))
        assert cls.__bases__ == expected, (
            f"{name}: the page says {expected}, the code has {cls.__bases__}")


def test_the_page_says_which_exceptions_the_package_exports() -> None:
    prose = " ".join(section("Exceptions").split())
    sentence = re.search(r"((?:`\w+`,? (?:and )?)+)are importable from "
                         r"`django_edgejobs\.exceptions` only", prose)
    assert sentence, "the sentence naming the exceptions not exported from the package is gone"
    only_in_module = set(re.findall(r"`(\w+)`", sentence.group(1)))
    assert only_in_module == module_exceptions() - package_exceptions()


def tables(page: str) -> list[list[str]]:
    """The rows (below the header) of each Markdown table."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in [*page.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current[2:])  # the header and the |---| line
            current = []
    return found


def cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def test_no_table_repeats_a_row() -> None:
    all_tables = tables(text())
    assert len(all_tables) > 10  # the parser found the page's tables
    for rows in all_tables:
        keys = [tuple(cells(r)[:2]) for r in rows]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        assert not repeated, f"a table of api.md repeats rows: {repeated}"
