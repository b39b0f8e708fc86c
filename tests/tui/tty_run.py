"""A live run of one tty agent (`shell`) whose output.log holds colour, cursor motion and
hostile escapes, and a real socket at its control socket that records what the console sends:
shared by the terminal tests (Pilot) and the tmux test of `corral attach`."""

from __future__ import annotations

from pathlib import Path

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, runs_root
from tests.tui.synthetic import launch, started, this_engine, write_events

COLOURED = (
    b"plain line\r\n"
    b"\x1b[31mred words\x1b[0m and \x1b[1;44mbold on blue\x1b[0m\r\n"
    b"this line is erased\r\n"
    b"\x1b]0;a hostile title\x07\x1b]52;c;aGk=\x07"  # OSC title and clipboard: swallowed
    b"\x1b[5;10Hmoved here"  # cursor motion: row 5, column 10
    b"\x1b[3;1H\x1b[Koverwritten\r\n"  # erase line 3, write over it
)


def make_tty_run(repo: Path, tmp_path: Path) -> RunDir:
    """A live run (this process poses as its engine) of agent `shell`, its log COLOURED."""
    rundir = RunDir(runs_root(repo / ".git") / "20231114-221320-abcdef")
    root = tmp_path / "agentfiles"
    agents = [
        ev.AgentSummary(id="shell", kind="coding", command=["sh"], tty=True, tty_size=(80, 24))
    ]
    write_events(
        rundir,
        [
            started(rundir.run_id, repo, agents, this_engine(), "a" * 40),
            *launch("shell", 1, 1, 101, root=str(root)),
        ],
    )
    log = root / "agents" / "shell" / "1" / "output.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(COLOURED)
    return rundir
