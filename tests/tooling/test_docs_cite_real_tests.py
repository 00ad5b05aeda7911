"""Every test the docs cite exists: a renamed or deleted test must not leave a promise unproven.

The README and docs/*.md prove each promise with `tests/<file>.py::test_name`. This reads those
references and checks each against the test file's syntax tree (no pytest collection: it stays fast
and needs no imports). A `::test_name` with no file before it continues the last full reference in
the same table cell (or paragraph), as the fault matrix writes them (only names starting with
`test`: `::ffff:127.0.0.1` is an address). Parametrized ids (`test_x[a]`)
are reduced to the function name; a `*` in a name must match at least one test."""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator
from functools import cache

from scripts import layout
from scripts.pack_loader import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

REFERENCE = re.compile(
    r"(?P<path>tests/[A-Za-z0-9_/]+\.py)(?P<names>(?:::[\w*]+)*)"
    r"|(?<![\w/.:])(?P<cont>(?:::[Tt]est[\w*]*)+)"
)


def cells(text: str) -> Iterator[tuple[int, str]]:
    """Table cells one by one, other text a paragraph at a time, each with its first line number."""
    paragraph: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("|"):
            yield from ((number, cell) for cell in line.split("|"))
            continue
        if not line.strip():
            if paragraph:
                yield start, "\n".join(paragraph)
            paragraph = []
            continue
        if not paragraph:
            start = number
        paragraph.append(line)
    if paragraph:
        yield start, "\n".join(paragraph)


def references(text: str) -> Iterator[tuple[int, str, str | None, str]]:
    """(line, test file, test name or None, the reference as written) for each reference."""
    for number, cell in cells(text):
        last_path: str | None = None
        for match in REFERENCE.finditer(cell):
            written = match.group(0)
            if match.group("path"):
                last_path = match.group("path")
                names = match.group("names")
                if not names:
                    yield number, last_path, None, written
                    continue
            else:
                names = match.group("cont")
                if last_path is None:
                    yield number, "", names.rsplit("::", 1)[-1], written
                    continue
            yield number, last_path, names.rsplit("::", 1)[-1], written


@cache
def defined_tests(path: str) -> frozenset[str] | None:
    """The test functions a file defines (module level and in classes); None if there is no file."""
    file = REPO_ROOT / path
    if not file.is_file():
        return None
    tree = layout.parse_source(file)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            found.add(node.name)
    return frozenset(found)


def problems(doc_name: str, text: str) -> list[str]:
    """One line per reference that names no existing file or no test in it."""
    found = []
    for number, path, name, written in references(text):
        where = f"{doc_name}:{number}: {written}"
        if not path:
            found.append(f"{where}: '::{name}' follows no tests/<file>.py reference in its cell")
            continue
        functions = defined_tests(path)
        if functions is None:
            found.append(f"{where}: there is no file {path}")
        elif name is not None and not fnmatch.filter(functions, name):
            found.append(f"{where}: {path} defines no test {name}")
    return found


def test_every_cited_test_exists() -> None:
    found = []
    for doc in DOCS:
        found += problems(str(doc.relative_to(REPO_ROOT)), doc.read_text(encoding="utf-8"))
    assert not found, "docs cite tests that do not exist:\n" + "\n".join(found)


def test_the_check_catches_a_wrong_name_a_missing_file_and_an_orphan_continuation() -> None:
    doc = (
        "| a | `tests/tooling/test_docs_cite_real_tests.py::test_every_cited_test_exists[x]`, `::test_nope` |\n"
        "| b | `tests/test_no_such_file.py::test_a` | `::test_every_cited_test_exists` |\n"
        "\n"
        "See `tests/tooling/test_docs_cite_real_tests.py::test_every_*` and `::test_the_check_*`.\n"
    )
    assert problems("doc.md", doc) == [
        "doc.md:1: ::test_nope: tests/tooling/test_docs_cite_real_tests.py defines no test test_nope",
        "doc.md:2: tests/test_no_such_file.py::test_a: there is no file tests/test_no_such_file.py",
        "doc.md:2: ::test_every_cited_test_exists: '::test_every_cited_test_exists'"
        " follows no tests/<file>.py reference in its cell",
    ]
