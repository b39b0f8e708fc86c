"""The console in a real terminal, as it is used over SSH: tmux runs `corral`, keys go in with
send-keys and the screen comes back with capture-pane. NO_COLOR is set: glyphs carry meaning."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.core.runs.rundir import RunDir
from corral.core.runtime.procfs import is_same_process
from tests.conftest import git, wait_until
from tests.core.engine_helpers import agent_block, events_of, state_of, wait_for_event
from tests.tmux import Tmux
from tests.tui.conftest import start_detached
from tests.tui.recording_engine import RecordingEngine
from tests.tui.tty_run import make_tty_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"corral-test-{os.getpid()}-{tmp_path.name}")
    yield server
    server.kill()


def test_console_in_a_real_terminal(
    repo: Path,
    tmp_path: Path,
    engines: list[RunDir],
    tmux: Tmux,
) -> None:
    sleeper = ["sh", "-c", "echo hello from sleeper; sleep 600"]
    rundir = start_detached(repo, tmp_path, agent_block("sleeper", sleeper), engines)
    wait_for_event(rundir, lambda e: e.type == "agent_started", what="the agent")
    command = f"cd {shlex.quote(str(repo))} && NO_COLOR=1 exec {shlex.quote(sys.executable)} -m corral.core.cli"
    tmux("new-session", "-d", "-s", "console", "-x", "100", "-y", "30", command)
    tmux("set-option", "-g", "escape-time", "0")

    tmux.wait_for("runs of", rundir.run_id, "● running")
    tmux.keys("Enter")
    tmux.wait_for("1 agents", "sleeper", "● running", "2 locks", "4 events")
    tmux.keys("Enter")
    tmux.wait_for("1 output", "hello from sleeper")
    tmux.keys("Escape")
    tmux.wait_for("1 agents", "x Kill")
    tmux.keys("?")
    tmux.wait_for("dashboard.kill", "dashboard.stop_run")
    for _ in range(12):  # the app's own keys come last, below a 30-row terminal's fold
        tmux.keys("j")
    tmux.wait_for("app.help")
    tmux.keys("Escape")
    tmux.wait_gone("keys of the dashboard screen")
    tmux.keys("q")
    tmux.wait_for("Quit the console?", "go on")
    tmux.keys("y")
    deadline = time.monotonic() + 10
    while (
        "console"
        in subprocess.run(
            ["tmux", "-L", tmux.socket, "list-sessions"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    ):
        assert time.monotonic() < deadline, "the console did not exit"
        time.sleep(0.1)
    engine = state_of(rundir).engine
    assert engine is not None
    assert is_same_process(engine.pid, engine.start_time), "quitting the console stopped the engine"
    assert state_of(rundir).agents["sleeper"].state == "running"


def test_corral_attach_shows_the_agents_terminal_and_types_into_it(
    repo: Path, tmp_path: Path, tmux: Tmux
) -> None:
    """`corral attach RUN AGENT` from a shell: the emulated terminal, in colour, with the
    agent's own escapes (a title, a clipboard write) kept from the host; keys go to the
    engine raw; ctrl+] goes back to the shell."""
    rundir = make_tty_run(repo, tmp_path)
    engine = RecordingEngine(rundir.socket)
    command = (
        f"cd {shlex.quote(str(repo))} && exec {shlex.quote(sys.executable)} -m corral.core.cli"
        f" attach {rundir.run_id} shell"
    )
    tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", command)
    tmux("set-option", "-g", "escape-time", "0")
    shown = tmux.wait_for("moved here", "overwritten", "ctrl+] detaches")
    assert "erased" not in shown
    assert "hostile" not in tmux("display-message", "-p", "-t", "console", "#{pane_title}")
    coloured = tmux("capture-pane", "-p", "-e", "-t", "console")

    def colour_of(text: str) -> str:
        return coloured.split(text)[0].rsplit("\x1b[", 1)[-1]

    assert colour_of("red words") != colour_of("plain line")  # drawn in the agent's colour
    tmux.keys("h", "i", "Enter")
    deadline = time.monotonic() + 10
    while engine.typed() != "hi\r":
        assert time.monotonic() < deadline, f"typed {engine.typed()!r}"
        time.sleep(0.1)
    # a second viewer, read-only: the same terminal, and its keys go nowhere
    tmux("new-session", "-d", "-s", "watcher", "-x", "80", "-y", "24", command + " --read-only")
    deadline = time.monotonic() + 20
    while not all(
        needle in (watched := tmux("capture-pane", "-p", "-t", "watcher"))
        for needle in ("read-only", "moved here")
    ):
        assert time.monotonic() < deadline, f"the watcher shows:\n{watched}"
        time.sleep(0.1)
    tmux("send-keys", "-t", "watcher", "x", "Enter")
    time.sleep(0.5)  # nothing must arrive: give it the time a key takes in the first viewer
    assert engine.typed() == "hi\r"
    tmux.keys("C-]")
    deadline = time.monotonic() + 10
    while (
        "console"
        in subprocess.run(
            ["tmux", "-L", tmux.socket, "list-sessions"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    ):
        assert time.monotonic() < deadline, "ctrl+] did not leave the console"
        time.sleep(0.1)


ASKER = """
import sys
print("\\x1b[32mready\\x1b[0m, your name?", flush=True)
name = input()
print(f"\\x1b[1mhello {name}\\x1b[0m", flush=True)
open("answer.txt", "w").write(name + "\\n")
"""


def test_a_real_tty_agent_is_attached_typed_into_and_its_answer_merged(
    repo: Path, tmp_path: Path, engines: list[RunDir], tmux: Tmux
) -> None:
    """The whole of issue 15's item 1 with a real engine: an interactive program on the engine's
    terminal, watched read-only in one window and typed into from `corral attach` in another;
    its answer is in its log and on its branch, and detaching leaves nothing behind."""
    body = agent_block("asker", [sys.executable, "-c", ASKER], tty=True, tty_size=[80, 20])
    rundir = start_detached(repo, tmp_path, body, engines)
    wait_for_event(
        rundir,
        lambda e: e.type == "agent_started" and e.agent == "asker",
        what="the agent on its terminal",
    )
    attach = (
        f"cd {shlex.quote(str(repo))} && exec {shlex.quote(sys.executable)} -m corral.core.cli"
        f" attach {rundir.run_id} asker"
    )
    tmux("new-session", "-d", "-s", "watcher", "-x", "80", "-y", "24", attach + " --read-only")
    tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", attach)
    tmux("set-option", "-g", "escape-time", "0")
    tmux.wait_for("ready, your name?", "ctrl+] detaches")
    tmux.keys("r", "o", "s", "a", "Enter")
    tmux.wait_for("hello rosa")

    def watched() -> str:
        return tmux("capture-pane", "-p", "-t", "watcher")

    wait_until(lambda: "hello rosa" in watched(), timeout=20, what="the watcher sees it too")
    assert "read-only" in watched()
    wait_for_event(
        rundir,
        lambda e: e.type == "agent_finished" and e.agent == "asker",
        what="the agent ended after its answer",
    )
    output = rundir.output_log("asker", 1).read_bytes()
    assert b"\x1b[32mready" in output  # the agent's own bytes, escapes kept in the log
    assert b"hello rosa" in output
    typed = [e for e in events_of(rundir) if e.type == "agent_input_sent"]
    assert typed
    assert all(e.agent == "asker" and e.raw for e in typed)
    assert "".join(e.text for e in typed) == "rosa\r"
    branch = f"corral/{rundir.run_id}/asker/1"
    assert git(repo, "show", f"{branch}:answer.txt") == "rosa"
    tmux.keys("C-]")
