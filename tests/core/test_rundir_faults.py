"""A run directory that fails under the engine, or is not what it seems: a clean stop or a refusal.

An immutable run directory (chattr +i) mid-run must stop the engine like a failing event log
does (docs/reliability.md E3): exit 3, the real error printed, a log that says the engine stopped (not
that the run finished), and a run that resumes once the directory is writable again.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import SOCKET_PATH_LIMIT
from tests.conftest import make_repo
from tests.core.engine_helpers import (
    agent_block,
    corral,
    engine_output,
    events_of,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)


def chattr(path: Path, flag: str) -> bool:
    """Set or clear an attribute; False when this user or filesystem cannot."""
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[list[Path]]:
    """Directories to make immutable; each is made mutable again at the end, whatever happens."""
    probe = tmp_path / "probe"
    probe.mkdir()
    if not chattr(probe, "+i"):
        pytest.skip(
            "chattr +i is not available here (it needs root and a filesystem with the "
            "immutable flag, such as ext4): no way to make a run directory unwritable"
        )
    chattr(probe, "-i")
    made: list[Path] = []
    yield made
    for path in made:
        chattr(path, "-i")


@pytest.fixture(params=["socket-inside", "socket-in-tmp"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A directory for the repository: short enough for the control socket to live in the run
    directory (as in most repositories), or so long that it lives in /tmp instead."""
    if request.param == "socket-in-tmp":
        yield tmp_path
        return
    short = Path(tempfile.mkdtemp(prefix="cr-", dir="/tmp"))
    yield short
    shutil.rmtree(short, ignore_errors=True)


def test_a_run_dir_made_immutable_mid_run_stops_with_exit_3_and_the_real_error(
    where: Path, tmp_path: Path, immutable: list[Path]
) -> None:
    repo = make_repo(where / "repo")
    go = tmp_path / "go"
    body = agent_block("a", ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"])
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    rundir = wait_for_run(repo)
    inside = len(str(rundir.path / "control.sock")) <= SOCKET_PATH_LIMIT
    assert inside == (where != tmp_path)
    assert rundir.socket.parent == rundir.path if inside else rundir.socket.parent != rundir.path
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentStarted), what="the agent's start")
    assert chattr(rundir.path, "+i")
    immutable.append(rundir.path)
    go.touch()
    code = engine.wait(timeout=60)
    output = engine_output(repo).replace("\n", "")  # the summary wraps long lines
    assert code == 3, output
    assert "Operation not permitted" in output
    assert f"{rundir.path}/.report" in output, "the error names the file it could not write"
    assert "control.sock" not in output
    assert "Traceback" not in output
    events = events_of(rundir)
    assert not [e for e in events if isinstance(e, ev.RunFinished)]
    last = events[-1]
    assert isinstance(last, ev.EngineStopped)
    assert last.reason.startswith("failed: ")
    assert "Operation not permitted" in last.reason
    assert state_of(rundir).status == "stopped"
    assert corral(repo, "verify", rundir.run_id).returncode == 0
    # once the directory is writable again, the run resumes into its end and finishes
    with contextlib.suppress(ValueError):
        immutable.remove(rundir.path)
    assert chattr(rundir.path, "-i")
    result = corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(rundir)
    assert (state.status, state.verdict) == ("finished", "passed")
    assert (rundir.path / "report.json").is_file()


# --- a live run, resumed again ------------------------------------------------------------------


def test_resume_detach_of_a_live_run_refuses_like_the_attached_form(
    repo: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    body = agent_block("a", ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"])
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentStarted), what="the agent's start")
    attached = corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    detached = corral(repo, "run", "--resume", rundir.run_id, "--detach")
    assert attached.returncode == 1, attached.stdout + attached.stderr
    assert "already has a live engine" in attached.stderr
    assert (detached.returncode, detached.stderr) == (attached.returncode, attached.stderr)
    assert "running in the background" not in detached.stdout
    assert not [e for e in events_of(rundir) if isinstance(e, ev.EngineResumed)]
    go.touch()
    assert engine.wait(timeout=60) == 0, engine_output(repo)


# --- symbolic links in place of run directories -------------------------------------------------


def finished_run(repo: Path, tmp_path: Path) -> Path:
    """The run directory of a finished one-agent run."""
    plan = write_plan(tmp_path, agent_block("a", ["true"]))
    assert corral(repo, "run", str(plan), "--quiet").returncode == 0
    (path,) = (repo / ".git" / "corral" / "runs").iterdir()
    return path


def assert_refused(result: subprocess.CompletedProcess[str], link: Path) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{link} " in result.stderr
    assert "is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_dir_replaced_by_a_symlink_is_refused(repo: Path, tmp_path: Path) -> None:
    path = finished_run(repo, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    run_id = path.name
    for args in (
        ["status", run_id],
        ["status"],  # the latest run
        ["status", run_id[:10]],  # a prefix
        ["verify", run_id],
        ["logs", run_id, "a"],
        ["run", "--resume", run_id, "--quiet"],
        ["run", "--resume", run_id, "--detach"],
        ["retry", run_id, "a"],
    ):
        assert_refused(corral(repo, *args), path)
    assert sorted(p.name for p in elsewhere.iterdir()) == before, "nothing written through it"


@pytest.mark.parametrize("level", ["corral", "corral/runs"])
def test_a_runs_directory_replaced_by_a_symlink_is_refused(
    repo: Path, tmp_path: Path, level: str
) -> None:
    path = finished_run(repo, tmp_path)
    link = repo / ".git" / level
    elsewhere = tmp_path / "elsewhere"
    link.rename(elsewhere)
    link.symlink_to(elsewhere)
    plan = write_plan(tmp_path, agent_block("b", ["true"]))
    for args in (
        ["status", path.name],
        ["runs"],
        ["run", "--resume", path.name, "--quiet"],
        ["run", str(plan), "--quiet"],  # a new run
        ["run", str(plan), "--detach"],
    ):
        assert_refused(corral(repo, *args), link)
    runs = elsewhere if level == "corral/runs" else elsewhere / "runs"
    assert [p.name for p in runs.iterdir()] == [path.name], "no new run behind the link"
