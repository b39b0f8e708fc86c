"""The project's own documents stay true to the code.

- every invariant id the code cites in a comment or docstring (`E3`, `L1-L7`, `U1`, ...) has an
  entry in `docs/reliability.md`, and every entry says where it is enforced and what tests it;
- every repository path the documents name in backticks (`core/engine/scheduler.py`,
  `tests/core/test_eventlog.py::test_name`) exists, and so does the named test function, so a later
  restructure has to keep the documents true;
- nothing cites a document that is not in the repository (the design, reliability, performance or
  style notes the code was first written against): the documents under `docs/` are the sources.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RELIABILITY_DOC = DOCS / "reliability.md"
SOURCE_DIRS = ("core", "worktrees", "tui", "bench", "tests", "examples")
"""Where corral's Python lives (the `corral/` folder only links to the first three)."""
OTHER_SOURCES = ("Makefile", "pyproject.toml", ".ci/run", "README.md")
TOP_LEVEL = ("core", "worktrees", "tui", "tests", "bench", "examples", "docs", ".ci")

INVARIANT = re.compile(r"\b([ELMSTUH])([1-9][0-9]?)(?:\s?[-\u2013]\s?\1?([1-9][0-9]?))?\b")
"""`E3`, `L1-L7`, `L2-7`: a letter of a rule family, a number, optionally a range."""
ENTRY = re.compile(r"^#{2,4}\s+([ELMSTUH][1-9][0-9]?)\b", re.MULTILINE)
FOREIGN_DOCUMENT = re.compile(
    r"\b(?:PERF|DESIGN|STYLE|RELIABILITY)\.md\b|\bRELIABILITY\b|\bPERF\b|/work/shared"
)
"""Citations of documents that live outside the repository."""
BACKTICKED = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(
    r"(?<![\w./<>$-])((?:" + "|".join(re.escape(top) for top in TOP_LEVEL) + r")(?:/[\w.-]+)*/?)"
    r"(::[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*)?(?![\w/<*{\[])"
)
"""A repository path, optionally with `::test_name`; a pattern such as `core/<name>.py` is none."""
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def python_files() -> list[Path]:
    files = [path for top in SOURCE_DIRS for path in sorted((ROOT / top).rglob("*.py"))]
    return [path for path in files if path.resolve() != Path(__file__).resolve()]


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """The comments and docstrings of a Python file (any bare string statement), with lines."""
    source = path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            yield node.lineno, node.value.value


def cited_ids(text: str) -> set[str]:
    found: set[str] = set()
    for match in INVARIANT.finditer(text):
        family, first, last = match.group(1), int(match.group(2)), match.group(3)
        end = int(last) if last else first
        found.update(f"{family}{number}" for number in range(first, max(first, end) + 1))
    return found


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def reliability_entries() -> dict[str, str]:
    """Each entry of docs/reliability.md: its id and its text up to the next heading."""
    text = RELIABILITY_DOC.read_text(encoding="utf-8")
    matches = list(ENTRY.finditer(text))
    entries: dict[str, str] = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        section = text[match.start() : end]
        entries[match.group(1)] = section.split("\n#", 1)[0]
    return entries


def test_the_three_documents_exist() -> None:
    for name in ("architecture.md", "reliability.md", "performance.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_every_invariant_cited_in_code_has_an_entry() -> None:
    citations: dict[str, list[str]] = {}
    for path in python_files():
        for line, text in prose(path):
            for invariant in cited_ids(text):
                citations.setdefault(invariant, []).append(f"{path.relative_to(ROOT)}:{line}")
    assert {"E3", "L6", "S2", "M3"} <= set(citations), "the scan no longer finds the citations"
    missing = {
        invariant: places
        for invariant, places in sorted(citations.items())
        if invariant not in reliability_entries()
    }
    assert not missing, f"cited in code but not in docs/reliability.md: {missing}"


def test_every_entry_names_its_enforcement_and_its_tests() -> None:
    entries = reliability_entries()
    assert len(entries) >= 30
    for invariant, text in entries.items():
        assert "Enforced in" in text, f"{invariant}: say which module enforces it"
        assert "Tested by" in text, f"{invariant}: name its tests, or say it is not yet tested"


def test_every_path_the_documents_name_exists() -> None:
    problems: list[str] = []
    checked = 0
    for doc in [*doc_files(), ROOT / "README.md"]:
        text = doc.read_text(encoding="utf-8")
        for span in BACKTICKED.findall(text):
            for match in REPO_PATH.finditer(span):
                checked += 1
                problem = _path_problem(match.group(1), match.group(2))
                if problem:
                    problems.append(f"{doc.relative_to(ROOT)}: `{span}`: {problem}")
        for target in LINK.findall(text):
            if "://" not in target and not (doc.parent / target).exists():
                problems.append(f"{doc.relative_to(ROOT)}: link to {target}: no such file")
    assert checked > 50, "the documents name hardly any paths: is the pattern still right?"
    assert not problems, "\n".join(problems)


def _path_problem(path: str, tests: str | None) -> str | None:
    target = ROOT / path
    if not target.exists():
        return f"{path} does not exist"
    if not tests:
        return None
    if target.suffix != ".py" or not target.is_file():
        return f"{path} is not a Python file, so it has no {tests}"
    *classes, function = tests.lstrip(":").split("::")
    scope: list[ast.stmt] = ast.parse(target.read_text(encoding="utf-8")).body
    for name in classes:
        found = [node for node in scope if isinstance(node, ast.ClassDef) and node.name == name]
        if not found:
            return f"{path} has no class {name}"
        scope = found[0].body
    defined = {
        node.name for node in scope if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    return None if function in defined else f"{path} has no test {function}"


def test_nothing_cites_a_document_outside_the_repository() -> None:
    found: list[str] = []
    for path in python_files():
        for line, text in prose(path):
            if FOREIGN_DOCUMENT.search(text):
                found.append(f"{path.relative_to(ROOT)}:{line}")
    for path in [*(ROOT / name for name in OTHER_SOURCES), *doc_files()]:
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FOREIGN_DOCUMENT.search(text):
                found.append(f"{path.relative_to(ROOT)}:{line}")
    assert not found, (
        "these cite a document that is not in the repository; cite docs/architecture.md, "
        f"docs/reliability.md or docs/performance.md instead: {found}"
    )


def test_the_scanners_see_what_they_must() -> None:
    """The patterns above, on the shapes they meet, so the tests cannot pass by matching nothing."""
    assert cited_ids("(RELIABILITY L1-L7) and E3, M4; L2-7") == {
        *(f"L{n}" for n in range(1, 8)),
        "E3",
        "M4",
    }
    assert cited_ids("sha256, S3x, T0 = 1, 1h30m") == set()
    spans = "python bench/bench_engine.py", "tests/core/test_x.py::test_y", "core/<name>.py"
    assert [m.groups() for span in spans for m in REPO_PATH.finditer(span)] == [
        ("bench/bench_engine.py", None),
        ("tests/core/test_x.py", "::test_y"),
    ]
    assert not REPO_PATH.search("corral.core.agent.lock_client and .git/corral/runs/<run>/")
    assert _path_problem("tests/test_docs.py", "::test_the_scanners_see_what_they_must") is None
    assert _path_problem("tests/test_docs.py", "::test_gone") is not None
    assert FOREIGN_DOCUMENT.search("as PERF.md says")
    assert FOREIGN_DOCUMENT.search("(PERF: two cores)")
    assert not FOREIGN_DOCUMENT.search("docs/reliability.md L8, docs/performance.md")
