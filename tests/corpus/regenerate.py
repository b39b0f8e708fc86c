"""Write the corpus again from real runs of today's code: `python -m tests.corpus.regenerate`.

Only when the log's format deliberately changes (docs/architecture.md, "The event log"): the
corpus exists to prove that logs written before a change still fold to the states recorded
then, so regenerating it after an accidental change would hide exactly what it guards. Logs
in FROZEN were written by older code and are never rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from corral.core.log import events as ev
from corral.core.log import read_log
from corral.core.log.state import fold
from corral.core.runs.rundir import RunDir
from tests.conftest import GIT_ENV, make_repo
from tests.core.engine_helpers import (
    agent_block,
    corral,
    kill9,
    only_run,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)
from tests.corpus.summary import summarize

CORPUS = Path(__file__).parent
FROZEN = frozenset({"v1-before-log-format"})
"""Written by corral before `log_format` existed (main at 7a77f7a): a version-1 log as it was."""


def _checked(result: object) -> None:
    returncode = getattr(result, "returncode", 0)
    assert returncode == 0, f"{result}"


def passed_and_approved(repo: Path, tmp: Path) -> RunDir:
    """Two coding agents, both merged; a person approves the report."""
    body = agent_block("writer", ["sh", "-c", "echo one > one.txt"])
    body += agent_block("second", ["sh", "-c", "echo two > two.txt"], depends_on=["writer"])
    _checked(corral(repo, "run", str(write_plan(tmp, body)), "--quiet"))
    rundir = only_run(repo)
    sha = state_of(rundir).report.sha256  # type: ignore[union-attr]
    _checked(corral(repo, "review", "approve", rundir.run_id, "--sha", sha))
    return rundir


def retries_and_dead_letter(repo: Path, tmp: Path) -> RunDir:
    """One agent fails every attempt and is dead-lettered; its sibling succeeds."""
    body = agent_block("flaky", ["sh", "-c", "echo trying; exit 3"], retries=1)
    body += agent_block("steady", ["sh", "-c", "echo ok > ok.txt"])
    result = corral(repo, "run", str(write_plan(tmp, body, "max_parallel = 2\n")), "--quiet")
    assert result.returncode == 1, result.stderr
    return only_run(repo)


def lock_broken(repo: Path, tmp: Path) -> RunDir:
    """An agent holds a lease; a person breaks it; another agent runs under `corral lock run`."""
    go = tmp / "go"
    hold = f"corral lock acquire db --ttl 60s && while [ ! -e {go} ]; do sleep 0.05; done"
    body = agent_block("holder", ["sh", "-c", hold])
    body += agent_block(
        "user", ["corral", "lock", "run", "db", "--", "true"], depends_on=["holder"]
    )
    engine = start_corral(repo, "run", str(write_plan(tmp, body)), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.LockAcquired), what="the lease")
    _checked(corral(repo, "lock", "break", "db", "--run", rundir.run_id, "--reason", "stuck"))
    go.write_text("go")
    assert engine.wait(timeout=60) == 0
    return rundir


def crash_and_resume(repo: Path, tmp: Path) -> RunDir:
    """The engine is killed (SIGKILL) while an agent runs; a new engine resumes the run."""
    go = tmp / "go"
    body = agent_block("slow", ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"])
    engine = start_corral(repo, "run", str(write_plan(tmp, body)), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentStarted), what="the agent's start")
    kill9(engine)
    go.write_text("go")
    _checked(corral(repo, "run", "--resume", rundir.run_id, "--quiet"))
    return rundir


def tampering_acknowledged(repo: Path, tmp: Path) -> RunDir:
    """An agent plants a hook setting in the shared config; a person acknowledges the report."""
    body = agent_block("planter", ["sh", "-c", "git config core.hooksPath /nonexistent"])
    corral(repo, "run", str(write_plan(tmp, body)), "--quiet")
    rundir = only_run(repo)
    (found,) = [e for e in read_log(rundir.events).events if isinstance(e, ev.RepoTampered)]
    _checked(corral(repo, "review", "acknowledge", rundir.run_id, "--through", str(found.seq)))
    return rundir


STREAM_REPLAY = """
import sys
for line in open(sys.argv[1], "rb"):
    sys.stdout.buffer.write(line)
"""
STREAM_SPENDER = """
import json, time
for n in range(1000):
    usage = {"input_tokens": 1000, "output_tokens": 10}
    message = {"id": f"m{n}", "model": "claude-sonnet-4-5", "content": [], "usage": usage}
    print(json.dumps({"type": "assistant", "message": message}), flush=True)
    time.sleep(0.1)
"""


def stream_and_budget(repo: Path, tmp: Path) -> RunDir:
    """An agent's Claude stream read into activity; another stopped by its token budget."""
    replay, spender = tmp / "replay.py", tmp / "spend.py"
    replay.write_text(STREAM_REPLAY)
    spender.write_text(STREAM_SPENDER)
    sample = Path(__file__).parents[1] / "agents" / "samples" / "claude.jsonl"
    body = agent_block("coder", [sys.executable, str(replay), str(sample)], stream="claude")
    body += agent_block(
        "spender", [sys.executable, str(spender)], stream="claude", max_tokens=3000, retries=1
    )
    plan = write_plan(tmp, body, "max_parallel = 2\nmin_success = 1\n")
    _checked(corral(repo, "run", str(plan), "--quiet"))
    return only_run(repo)


SCENARIOS: dict[str, Callable[[Path, Path], RunDir]] = {
    "passed-and-approved": passed_and_approved,
    "retries-and-dead-letter": retries_and_dead_letter,
    "lock-broken": lock_broken,
    "crash-and-resume": crash_and_resume,
    "tampering-acknowledged": tampering_acknowledged,
    "stream-and-budget": stream_and_budget,
}


def record(rundir: RunDir, target: Path) -> None:
    """Copy the log byte for byte and write the state it folds to beside it."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rundir.events, target / "events.jsonl")
    state = fold(read_log(target / "events.jsonl").events)
    (target / "state.json").write_text(json.dumps(summarize(state), indent=2) + "\n")


def main(names: list[str]) -> int:
    os.environ.update(GIT_ENV)
    for name in names or list(SCENARIOS):
        if name in FROZEN:
            print(f"{name}: frozen (written by older code), left as it is", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix=f"corral-corpus-{name}-") as scratch:
            tmp = Path(scratch)
            rundir = SCENARIOS[name](make_repo(tmp / "repo"), tmp)
            record(rundir, CORPUS / name)
        size = (CORPUS / name / "events.jsonl").stat().st_size
        print(f"{name}: {size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
