"""corral's findings JSON (a published schema); core/findings/output.py loads an audit attempt's
CORRAL_OUTPUT with it.

Everything an agent writes is untrusted (docs/reliability.md U1). A file is refused when it
is not a regular file (no symlinks), larger than MAX_FILE_BYTES or not UTF-8; a text field when
it is longer than MAX_TEXT characters or holds a terminal escape, another control character
(tab and newline are fine) or a bidirectional-override character; a path when it is absolute,
climbs with `..` or uses backslashes. One bad field fails the agent's whole contribution (it is
never merged in part), and the error names the file, the field and the problem.

    findings.json   {"version": 1, "tool": "...", "findings": [Finding, ...]}
    *.sarif         SARIF 2.1.0 (see `corral.core.findings.sarif`)
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from corral.core.errors import CorralError
from corral.core.trust.inert import UNSAFE, visible

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
"""Most severe first."""

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TEXT = 64 * 1024
"""Characters in one text field (detail, recommendation)."""
MAX_LINE = 1000
"""Characters in a one-line field (title, asset, rule, tool, id)."""
MAX_PATH = 4096
MAX_FINDINGS = 10_000
"""Findings from one attempt, all files together."""
MAX_FILES = 32
FINDINGS_FILE = "findings.json"
SARIF_SUFFIXES = (".sarif", ".sarif.json")
SCHEMA_VERSION = 1


def severity_rank(severity: Severity) -> int:
    """0 for critical ... 4 for info."""
    return SEVERITIES.index(severity)


def _describe(char: str) -> str:
    if char in "\x1b\x9b":
        return "a terminal escape sequence"
    if char == "\r":
        return "a carriage return (it can overwrite what a terminal shows)"
    if unicodedata.category(char) == "Cf":
        return f"a bidirectional control character (U+{ord(char):04X})"
    return f"a control character (U+{ord(char):04X})"


def inert_text(value: str) -> str:
    """`value` if a terminal shows it as it is; CRLF line ends become LF."""
    value = value.replace("\r\n", "\n")
    found = UNSAFE.search(value)
    if found:
        raise ValueError(
            f"contains {_describe(found.group())} at character {found.start()}; "
            "agent output must be plain text"
        )
    return value


def inert_line(value: str) -> str:
    value = inert_text(value)
    if "\n" in value:
        raise ValueError("spans several lines; this field holds one line")
    return value


def repo_path(value: str) -> str:
    """A path relative to the repository root, normalised (`./a//b` -> `a/b`)."""
    value = inert_line(value)
    if "\\" in value:
        raise ValueError(f"{value!r} uses backslashes; separate path components with /")
    if value.startswith(("/", "~")) or re.match(r"[A-Za-z]:", value):
        raise ValueError(f"{value!r} is absolute; give a path relative to the repository root")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{value!r} climbs out with '..'; give a path inside the repository")
    if not parts:
        raise ValueError(f"{value!r} names no file")
    return "/".join(parts)


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(inert_text)]
Line = Annotated[str, StringConstraints(max_length=MAX_LINE), AfterValidator(inert_line)]
NonEmptyLine = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LINE), AfterValidator(inert_line)
]
RepoPath = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_PATH), AfterValidator(repo_path)
]


class Finding(BaseModel):
    """One finding as an audit agent reports it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: NonEmptyLine
    """The agent's own id for it (unique within the agent's output)."""
    severity: Severity
    title: NonEmptyLine
    asset: Line | None = None
    """What it is about when that is not a file: a system, account, control, endpoint..."""
    file: RepoPath | None = None
    """Path relative to the repository root."""
    line: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    """1-based line in `file`."""
    detail: Text = ""
    recommendation: Text = ""
    tool: Line = ""
    """The tool or method that found it."""
    rule: Line | None = None
    """The tool's rule or check id (tool-specific, so not used to deduplicate)."""

    @model_validator(mode="after")
    def _located(self) -> Finding:
        if self.file is None and not self.asset:
            raise ValueError("needs a file or an asset saying what it is about")
        if self.line is not None and self.file is None:
            raise ValueError("has a line but no file")
        return self


class FindingsFile(BaseModel):
    """The whole `findings.json` an audit agent writes to `$CORRAL_OUTPUT`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: Literal[1]
    """Schema version; this is version 1."""
    tool: Line | None = None
    """Default `tool` for findings that name none."""
    findings: Annotated[list[Finding], Field(max_length=MAX_FINDINGS)]


def findings_json_schema() -> dict[str, Any]:
    """The published JSON Schema of `findings.json`."""
    return FindingsFile.model_json_schema()


@dataclass(frozen=True)
class Problem:
    """One reason an agent's output was refused."""

    file: str
    field: str
    problem: str

    def __str__(self) -> str:
        # the file name and a JSON key are the agent's: spelled out, so the reason is inert
        # (T5) and still names the very file
        where = f"{self.file}: {self.field}" if self.field else self.file
        return visible(f"{where}: {self.problem}")


class FindingsError(CorralError):
    """An agent's output is invalid; nothing of it is merged."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(shown + more)


@dataclass
class AgentFindings:
    """The valid output of one attempt."""

    agent: str
    attempt: int
    findings: list[Finding] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    """File names the findings came from."""


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """`("findings", 3, "title")` -> `findings[3].title`."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def validation_problems(file: str, exc: ValidationError, prefix: str = "") -> list[Problem]:
    """The errors pydantic found, without echoing the (untrusted, maybe huge) input."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(Problem(file, field_path(error["loc"], prefix), message))
    return problems


def parse_findings_json(name: str, data: bytes) -> list[Finding]:
    """Validate a `findings.json`; fills in each finding's tool from the file's default."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FindingsError([Problem(name, "", f"is not UTF-8 (byte {exc.start})")]) from None
    try:
        parsed = FindingsFile.model_validate_json(text)
    except ValidationError as exc:
        raise FindingsError(validation_problems(name, exc)) from None
    if parsed.tool:
        return [
            f if f.tool else f.model_copy(update={"tool": parsed.tool}) for f in parsed.findings
        ]
    return list(parsed.findings)


def dumps_schema() -> str:
    return json.dumps(findings_json_schema(), indent=2, sort_keys=True) + "\n"
