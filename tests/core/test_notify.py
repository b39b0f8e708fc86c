"""Notifications (issue 13): the rule (core/log/notices.py) and the plan's `[run] notify` command
(core/engine/notify.py), through the real engine: one notice per agent per state change, the
notice as JSON on the command's stdin, heartbeats and other chatter never noticed, and a
command that hangs neither holds the engine up nor outlives it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corral.core.log.notices import Notice, NoticeWatch
from corral.core.log.state import RunState, apply
from corral.core.log.state_models import AgentState
from tests.conftest import wait_until
from tests.core.engine_helpers import agent_block, corral, events_of, only_run, write_plan

CLI = f"{sys.executable} -m corral.core.cli"
RECORD = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read())"


def notices_in(path: Path) -> list[Notice]:
    return [Notice.model_validate_json(line) for line in path.read_text().splitlines()]


def test_each_agent_end_is_one_notice_on_the_commands_stdin(repo: Path, tmp_path: Path) -> None:
    heard = tmp_path / "heard.jsonl"
    beats = " && ".join([f"{CLI} heartbeat --progress {n * 5}%" for n in range(1, 11)])
    body = agent_block("chatty", ["sh", "-c", beats + " && echo done > A.md"])
    body += agent_block("broken", ["sh", "-c", "exit 3"], retries=1)
    notify = json.dumps([sys.executable, "-c", RECORD, str(heard)])
    plan = write_plan(tmp_path, body, header=f"notify = {notify}\nmin_success = 1\n")
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    notices = notices_in(heard)
    said = [(n.agent, n.state) for n in notices]
    # the order between the two agents is the scheduler's; each agent's own order is fixed
    assert [s for s in said if s[0] == "chatty"] == [("chatty", "succeeded")]
    assert [s for s in said if s[0] == "broken"] == [
        ("broken", "failed"),
        ("broken", "failed"),
        ("broken", "dead_lettered"),
    ]
    assert said[-1] == (None, "finished")
    run = only_run(repo)
    assert {n.run_id for n in notices} == {run.run_id}
    seqs = {e.seq: e.type for e in events_of(run)}
    assert all(seqs[n.seq] == n.event for n in notices)
    assert "exited with status 3" in next(n.text for n in notices if n.state == "failed")

    # the console computes the same notices from the same log (one rule), and a replay of
    # history it opens mid-way is remembered, not noticed
    state, watch, quiet_state, quiet = RunState(), NoticeWatch(), RunState(), NoticeWatch()
    again = []
    for event in events_of(run):
        apply(state, event)
        apply(quiet_state, event)
        assert quiet.observe(quiet_state, event, quiet=True) is None
        notice = watch.observe(state, event)
        if notice is not None:
            again.append(notice)
    assert again == notices
    assert quiet.noticed == watch.noticed


def test_a_hanging_command_neither_holds_the_engine_nor_outlives_it(
    repo: Path, tmp_path: Path
) -> None:
    marker = f"corral-notify-hang-{tmp_path.name}"
    hang = json.dumps(["sh", "-c", f"sleep 300; : {marker}"])
    plan = write_plan(tmp_path, agent_block("quick", ["true"]), header=f"notify = {hang}\n")
    result = corral(repo, "run", str(plan), "--quiet", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "notify" in result.stderr  # said what it stopped

    def hook_gone() -> bool:
        listed = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
        return marker not in listed.stdout

    wait_until(hook_gone, timeout=10, what="the notify command stopped with the engine")


def test_a_wait_for_input_is_one_notice_until_the_agent_goes_on() -> None:
    from corral.core.log import events as ev

    state = RunState()
    state.agents["aider"] = AgentState(
        id="aider", kind="coding", command=["aider"], state="running"
    )
    watch = NoticeWatch()
    asks = ev.AgentActivity(agent="aider", attempt=1, waiting="Add file to the chat? (Y)es/(N)o")
    said = [watch.observe(state, asks.model_copy(update={"seq": n})) for n in (1, 2)]
    assert [n.state if n else None for n in said] == ["waiting_for_input", None]
    assert said[0] is not None
    assert said[0].text == "aider: waiting for input: Add file to the chat? (Y)es/(N)o"
    goes_on = ev.AgentActivity(agent="aider", attempt=1, tokens_in=10, seq=3)
    assert watch.observe(state, goes_on) is None
    again = watch.observe(state, asks.model_copy(update={"seq": 4}))
    assert again is not None
    assert again.state == "waiting_for_input"
