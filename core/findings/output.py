"""Loading an audit attempt's CORRAL_OUTPUT: every findings.json and *.sarif file in it, read as
untrusted bytes (docs/reliability.md U1) and parsed by the schema's or the SARIF reader.

Apart from schema.py so that the SARIF reader, which builds on the schema, is not imported back
by it (tests/test_architecture.py: no import cycle).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from corral.core.findings.schema import (
    FINDINGS_FILE,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_FINDINGS,
    SARIF_SUFFIXES,
    AgentFindings,
    FindingsError,
    Problem,
    parse_findings_json,
)


def read_untrusted(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, refusing symlinks, devices, fifos and files over `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        reason = "is a symlink" if os.path.islink(path) else (exc.strerror or "cannot be opened")
        raise FindingsError([Problem(path.name, "", f"{reason}; write a regular file")]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FindingsError([Problem(path.name, "", "is not a regular file")])
        if info.st_size > limit:
            raise FindingsError(
                [Problem(path.name, "", f"is {info.st_size} bytes; the limit is {limit} bytes")]
            )
        content = b""
        while len(content) <= limit:  # a file that grows meanwhile is still cut off
            chunk = os.read(fd, limit + 1 - len(content))
            if not chunk:
                break
            content += chunk
    finally:
        os.close(fd)
    if len(content) > limit:
        raise FindingsError([Problem(path.name, "", f"is over the limit of {limit} bytes")])
    return content


def _candidates(directory: Path) -> list[Path]:
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        raise FindingsError([Problem(str(directory), "", "does not exist")]) from None
    if not stat.S_ISDIR(info.st_mode):
        raise FindingsError([Problem(str(directory), "", "is not a directory")])
    names = sorted(os.listdir(directory))
    found = [n for n in names if n == FINDINGS_FILE or n.endswith(SARIF_SUFFIXES)]
    if not found:
        raise FindingsError(
            [
                Problem(
                    str(directory),
                    "",
                    f"holds no {FINDINGS_FILE} and no *.sarif; an audit agent must write one, "
                    "even when it found nothing",
                )
            ]
        )
    if len(found) > MAX_FILES:
        raise FindingsError(
            [
                Problem(
                    str(directory),
                    "",
                    f"holds {len(found)} findings files; the limit is {MAX_FILES}",
                )
            ]
        )
    return [directory / name for name in found]


def load_output(directory: Path, agent: str, attempt: int) -> AgentFindings:
    """Every finding in an attempt's CORRAL_OUTPUT, or FindingsError naming all problems."""
    from corral.core.findings.sarif import parse_sarif  # SARIF models load only when needed

    result = AgentFindings(agent=agent, attempt=attempt)
    problems: list[Problem] = []
    for path in _candidates(directory):
        try:
            data = read_untrusted(path)
            parse = parse_findings_json if path.name == FINDINGS_FILE else parse_sarif
            found = parse(path.name, data)
        except FindingsError as exc:
            problems += exc.problems
            continue
        result.findings += found
        result.sources.append(path.name)
    if len(result.findings) > MAX_FINDINGS:
        problems.append(
            Problem(
                str(directory), "", f"{len(result.findings)} findings; the limit is {MAX_FINDINGS}"
            )
        )
    seen: set[str] = set()
    for finding in result.findings:
        if finding.id in seen:
            problems.append(Problem(str(directory), "id", f"{finding.id!r} is used twice"))
        seen.add(finding.id)
    if problems:
        raise FindingsError(problems)
    return result
