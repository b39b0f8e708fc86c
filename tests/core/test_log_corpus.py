"""Logs written by earlier code still verify and fold to the states recorded when they were
written (tests/corpus/), and a log newer than this code is refused, not misread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.core.log import LogCorrupted, LogFormatTooNew, read_log, verify_log
from corral.core.log.event_types.base import LOG_FORMAT
from corral.core.log.state import fold
from tests.corpus.regenerate import CORPUS, FROZEN, SCENARIOS
from tests.corpus.summary import summarize

LOGS = sorted(path.parent.name for path in CORPUS.glob("*/events.jsonl"))


def test_the_corpus_holds_every_scenario_and_a_version_1_log() -> None:
    assert set(LOGS) == set(SCENARIOS) | FROZEN
    first = json.loads(
        (CORPUS / "v1-before-log-format" / "events.jsonl").read_bytes().split(b"\n")[0]
    )
    assert first["type"] == "run_started"
    assert "log_format" not in first, "the frozen log predates the field"


@pytest.mark.parametrize("name", LOGS)
def test_a_recorded_log_replays_to_its_recorded_state(name: str) -> None:
    log = CORPUS / name / "events.jsonl"
    verified = verify_log(log)
    assert verified.ok, verified.problem
    contents = read_log(log)
    assert contents.torn_tail is None
    assert len(contents.events) == verified.events
    expected = json.loads((CORPUS / name / "state.json").read_text())
    assert summarize(fold(contents.events)) == expected


def test_the_corpus_stays_small() -> None:
    for name in LOGS:
        assert (CORPUS / name / "events.jsonl").stat().st_size < 16_384, name


def _with_format(tmp_path: Path, version: int, *, extra: str = "") -> Path:
    """The first scenario's log with `run_started` rewritten to `version` (and perhaps a field
    this code does not know), the chain fixed up so only the version can be wrong."""
    import hashlib

    lines = (CORPUS / "passed-and-approved" / "events.jsonl").read_bytes().split(b"\n")[:-1]
    first = json.loads(lines[0])
    first["log_format"] = version
    if extra:
        first[extra] = "new"
    out, prev = [], None
    for index, line in enumerate(lines):
        if index == 0:
            line = json.dumps(first, separators=(",", ":")).encode()
        else:
            event = json.loads(line)
            event["prev"] = prev
            line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        prev = hashlib.sha256(line).hexdigest()
        out.append(line)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def test_a_log_of_the_current_format_reads(tmp_path: Path) -> None:
    assert read_log(_with_format(tmp_path, LOG_FORMAT)).events


@pytest.mark.parametrize("extra", ["", "a_field_of_the_future"])
def test_a_log_newer_than_this_code_is_refused_naming_its_version(
    tmp_path: Path, extra: str
) -> None:
    log = _with_format(tmp_path, LOG_FORMAT + 1, extra=extra)
    with pytest.raises(LogFormatTooNew) as caught:
        read_log(log)
    message = str(caught.value)
    assert f"log format {LOG_FORMAT + 1}" in message
    assert f"up to {LOG_FORMAT}" in message
    assert "Upgrade corral" in message
    assert isinstance(caught.value, LogCorrupted), "readers that stop on corruption stop here too"
    verified = verify_log(log)
    assert (verified.ok, verified.status, verified.first_bad_seq) == (False, "corrupted", 1)
    assert "Upgrade corral" in verified.problem
