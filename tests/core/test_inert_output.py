"""Every output of the command line over one hostile run is inert (docs/reliability.md T5).

One run whose plan name, verify command, agent output, heartbeat messages, lock reason and
findings file name are full of terminal escapes; every command a person runs on it (piped and on
a real pseudo-terminal) prints no control character but newline and tab, and the report files
hold none, while the text around the escapes is still there to read, JSON still carries the
exact strings, and `corral logs --raw` still gives the agent's bytes.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import unicodedata
from pathlib import Path

import pytest

from corral.core.log import events as ev
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    CORRAL,
    agent_block,
    state_of,
    wait_for_event,
    wait_for_run,
)

PY = sys.executable
HOSTILE = (
    "\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b]52;c;ZXZpbA==\x07\x1bP+q\x1b\\\x1b_apc\x1b\\"
    "\x1b^pm\x1b\\\x1bX sos\x1b\\\x9b2J\x9d0;t\x9c\x07\x08\x7f\x85\u202eevil\u202c\r"
)
"""Title, erase screen, cursor home, OSC 52 clipboard, DCS, APC, PM, SOS, 8-bit CSI and OSC,
bell, backspace, DEL, NEL, right-to-left override, carriage return."""
PLAN_NAME = "plan \x1b]0;owned\x07\x1b[2J\x9b31m\u202e plan-end"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
RICH_OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[hl]|\x1b\[[0-9]*[ABCDGK]|\r")
"""What rich itself writes to a terminal: colours, cursor hide/show, line moves and erases."""


def unsafe(text: str) -> list[str]:
    """Controls but newline and tab, undecodable bytes, and bidirectional controls."""
    return sorted(
        {
            f"U+{ord(char):04X}"
            for char in text
            if (unicodedata.category(char) in ("Cc", "Cs") and char not in "\n\t") or char in BIDI
        }
    )


def readable(output: bytes, *, terminal: bool = False) -> str:
    """Output as text, undecodable bytes kept (as surrogates); on a terminal, without the few
    sequences rich itself draws with (so an agent's OSC, erase-screen or cursor-home remains)."""
    text = output.decode("utf-8", "surrogateescape")
    return RICH_OWN.sub("", text) if terminal else text


class Terminal:
    """A command on a real pseudo-terminal (200x50), its output read as it comes."""

    def __init__(self, repo: Path, *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.proc = subprocess.Popen(
            [*CORRAL, *args],
            cwd=repo,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "TERM": "xterm-256color"},
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed its end
                return
            if not data:
                return
            self.output += data

    def finish(self, timeout: float = 60) -> bytes:
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        os.close(self.master)
        return bytes(self.output)


def on_terminal(repo: Path, *args: str) -> bytes:
    return Terminal(repo, *args).finish()


def piped(repo: Path, *args: str) -> bytes:
    """What `corral ARGS` writes to a pipe, stdout then stderr, as bytes (nothing decoded)."""
    result = subprocess.run([*CORRAL, *args], cwd=repo, capture_output=True, timeout=120)
    return result.stdout + result.stderr


def hostile_plan(tmp_path: Path, gate: Path) -> Path:
    talker = tmp_path / "talker.py"
    talker.write_text(
        "import pathlib, subprocess, sys, time\n"
        f"H = {HOSTILE!r}\n"
        "sys.stdout.buffer.write(('out-start ' + H + ' out-end\\n').encode())\n"
        "sys.stdout.buffer.write(b'raw 8-bit \\x9b2J and \\xc2\\x9b2J bytes\\r\\nline-end\\n')\n"
        "sys.stdout.flush()\n"
        "subprocess.run(['corral', 'lock', 'acquire', 'db', '--reason', 'why ' + H], check=True)\n"
        f"gate = pathlib.Path({str(gate)!r})\n"
        "while not gate.exists():  # beats until let go, so the message is the last one seen\n"
        "    subprocess.run(['corral', 'heartbeat', '--progress', '50%', 'beat ' + H + ' beat-end'],"
        " check=True)\n"
        "    time.sleep(0.2)\n"
    )
    auditor = tmp_path / "auditor.py"
    auditor.write_text(
        "import json, os, pathlib\n"
        "out = pathlib.Path(os.environ['CORRAL_OUTPUT'])\n"
        "finding = {'id': 'F1', 'severity': 'low', 'file': 'README.md', 'line': 1, 'title': 'ok'}\n"
        "(out / 'findings.json').write_text(json.dumps({'version': 1, 'findings': [finding]}))\n"
        f"(out / ('evil' + {HOSTILE.replace(chr(13), '')!r} + '.sarif')).write_text('not json')\n"
    )
    verify = ["sh", "-c", "true # \x1b]0;verify\x07\x1b[2J verify-end"]
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[run]\nname = {json.dumps(PLAN_NAME)}\nmin_success = 1\nbackoff = "50ms"\n'
        f"verify = {json.dumps(verify)}\n\n"
        + agent_block("talker", [PY, str(talker)])
        + agent_block("auditor", [PY, str(auditor)], kind="audit")
    )
    return plan


def _while_running(repo: Path, gate: Path, live: Terminal, outputs: dict[str, bytes]) -> None:
    """The commands a person runs while the talker beats and holds its lock."""
    rundir = wait_for_run(repo)
    run_id = rundir.run_id
    wait_for_event(rundir, lambda e: isinstance(e, ev.LockAcquired), what="the talker's lock")
    wait_for_event(
        rundir,
        lambda e: isinstance(e, ev.AgentDeadLettered) and e.agent == "auditor",
        what="the auditor's rejection",
    )

    def status_shows_the_beat() -> bytes | None:
        out = piped(repo, "status", run_id)
        return out if b"beat-end" in out else None

    outputs["status while running"] = wait_until(  # type: ignore[assignment]
        status_shows_the_beat, what="the heartbeat message in `corral status`"
    )
    outputs["status on a terminal"] = on_terminal(repo, "status", run_id)
    wait_until(lambda: b"beat-end" in live.output, what="the live table to show the heartbeat")
    follower = subprocess.Popen(
        [*CORRAL, "logs", run_id, "talker", "-f"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    outputs["lock list"] = piped(repo, "lock", "list", "--run", run_id)
    outputs["lock list --json"] = piped(repo, "lock", "list", "--run", run_id, "--json")
    gate.touch()
    outputs["logs -f"] = follower.communicate(timeout=60)[0]


@pytest.mark.slow  # two runs and some twenty `corral` commands, real processes all
def test_every_output_of_a_hostile_run_is_inert(repo: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    plan = hostile_plan(tmp_path, gate)
    outputs: dict[str, bytes] = {}
    live = Terminal(repo, "run", str(plan))  # the live table of `corral run` on a terminal
    try:
        _while_running(repo, gate, live, outputs)
    finally:
        gate.touch()  # a failed check must not leave the talker beating forever
        outputs["run on a terminal"] = live.finish()
    rundir = wait_for_run(repo)
    run_id = rundir.run_id
    state = state_of(rundir)
    assert state.status == "finished", outputs["run on a terminal"]
    after: list[tuple[str, ...]] = [
        ("status", run_id),
        ("status", run_id, "--json"),
        ("runs",),
        ("runs", "--json"),
        ("logs", run_id, "talker"),
        ("logs", run_id, "auditor"),
        ("review", "show", run_id),
        ("validate", str(plan)),
        ("verify", run_id),
        ("gc", "--dry-run"),
    ]
    for args in after:
        outputs[" ".join(args).replace(run_id, "RUN")] = piped(repo, *args)
    outputs["logs on a terminal"] = on_terminal(repo, "logs", run_id, "talker")
    outputs["run in a pipe"] = piped(repo, "run", str(plan))  # plain lines, not the live table
    for name in ("report.md", "report.json", "report.sarif"):
        outputs[name] = (rundir.path / name).read_bytes()

    shown = {what: readable(out, terminal="terminal" in what) for what, out in outputs.items()}
    leaks = {what: unsafe(text) for what, text in shown.items() if unsafe(text)}
    assert not leaks, f"control characters reach the screen or a report: {leaks}"
    # inert, not blank: the text around the escapes is still there to read
    for what, marks in {
        "status while running": ["beat-end"],
        "runs": ["plan-end"],
        "logs RUN talker": ["out-end", "line-end"],
        "logs -f": ["out-end", "line-end"],
        "logs on a terminal": ["out-end"],
        "status RUN": ["evil", ".sarif", "verify-end"],
        "review show RUN": ["plan-end", "evil", ".sarif", "verify-end"],
        "report.md": ["plan-end", "evil", ".sarif", "verify-end"],
        "run in a pipe": ["evil", ".sarif", "verify-end"],
    }.items():
        assert all(mark in shown[what] for mark in marks), (what, shown[what])
    # JSON keeps the exact strings, escaped
    assert json.loads(shown["status RUN --json"])["name"] == PLAN_NAME
    assert PLAN_NAME in [run["name"] for run in json.loads(shown["runs --json"])["runs"]]
    assert json.loads(shown["report.json"])["name"] == PLAN_NAME
    # the agent's bytes, on request
    raw = piped(repo, "logs", run_id, "talker", "--raw")
    for sequence in (b"\x1b]52;c;ZXZpbA==\x07", b"\x1b[2J", b" \x9b2J", b"\r\n"):
        assert sequence in raw
