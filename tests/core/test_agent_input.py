"""A person's messages to a running agent (issue 13: `corral send`, the console's `i`): written
whole to its stdin in its `input_format`, logged with who sent them, refused clearly when the
agent takes no input or is not running, refused and logged when an agent tries (T1), and never
blocking the engine when the agent does not read."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from corral.core.log import events as ev
from corral.core.runtime.agent_input import MAX_PENDING, InputRefused, PipeInput, encode_input
from tests.conftest import git
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)

CLI = f"{sys.executable} -m corral.core.cli"
LISTENER = """
import sys
with open("got.txt", "a") as got:
    for line in sys.stdin:
        got.write(line)
        got.flush()
        if line.strip() == "bye":
            break
"""


def test_messages_reach_the_agents_stdin_and_are_logged_with_who_sent_them(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("listener", [sys.executable, "-c", LISTENER], input_format="lines")
    body += agent_block("deaf", ["sleep", "60"])
    plan = write_plan(tmp_path, body, header="min_success = 1\n")
    engine = start_corral(repo, "run", str(plan), "--quiet")
    try:
        run = wait_for_run(repo)
        for agent in ("listener", "deaf"):
            wait_for_event(
                run,
                lambda e, a=agent: isinstance(e, ev.AgentStarted) and e.agent == a,
                what=f"{agent} started",
            )
        refused = corral(repo, "send", run.run_id, "deaf", "hello")
        assert refused.returncode == 1
        assert "takes no input while it runs" in refused.stderr
        for words in (["hello", "there"], ["bye"]):
            sent = corral(repo, "send", run.run_id, "listener", *words)
            assert sent.returncode == 0, sent.stderr
            assert sent.stdout.strip() == "listener#1: message sent"
        wait_for_event(
            run,
            lambda e: isinstance(e, ev.AgentFinished) and e.agent == "listener",
            what="the listener ended after bye",
        )
        late = corral(repo, "send", run.run_id, "listener", "too late")
        assert late.returncode == 1
        assert "is not running" in late.stderr
        assert corral(repo, "kill", run.run_id, "deaf").returncode == 0
        assert engine.wait(timeout=60) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    inputs = [e for e in events_of(run) if isinstance(e, ev.AgentInputSent)]
    user = os.environ.get("USER") or inputs[0].by
    assert [(e.agent, e.attempt, e.by, e.text) for e in inputs] == [
        ("listener", 1, user, "hello there"),
        ("listener", 1, user, "bye"),
    ]
    state = state_of(run)
    assert state.agents["listener"].state == "succeeded"
    integration = state.merge.integration_commit
    assert integration is not None
    assert git(repo, "show", f"{integration}:got.txt") == "hello there\nbye"


def test_an_agent_cannot_send_input_and_its_try_is_logged(repo: Path, tmp_path: Path) -> None:
    body = agent_block("listener", [sys.executable, "-c", LISTENER], input_format="lines")
    sneak = f'{CLI} send "$CORRAL_RUN_ID" listener bye; echo "exit $?"'
    body += agent_block("meddler", ["sh", "-c", sneak], kind="audit")
    plan = write_plan(tmp_path, body, header="min_success = 0\n")
    engine = start_corral(repo, "run", str(plan), "--quiet")
    try:
        run = wait_for_run(repo)
        wait_for_event(
            run,
            lambda e: isinstance(e, ev.AgentFinished) and e.agent == "meddler",
            what="the meddler ended",
        )
        assert corral(repo, "kill", run.run_id, "listener").returncode == 0
        engine.wait(timeout=60)
    finally:
        if engine.poll() is None:
            engine.kill()
    output = run.output_log("meddler", 1).read_text()
    assert "exit 0" not in output
    events = events_of(run)
    assert not [e for e in events if isinstance(e, ev.AgentInputSent)]
    refusals = [e for e in events if isinstance(e, ev.OperatorActionRefused)]
    assert [(r.action, r.target, r.caller_agent) for r in refusals] == [
        ("input", "agent listener", "meddler")
    ]


def test_stream_json_is_claude_codes_user_message() -> None:
    line = encode_input("stream-json", "also add a test")
    assert line.endswith(b"\n")
    assert json.loads(line) == {
        "type": "user",
        "message": {"role": "user", "content": [{"type": "text", "text": "also add a test"}]},
    }
    assert encode_input("lines", "two\nlines") == b"two lines\n"


def test_an_agent_that_does_not_read_never_blocks_the_engine() -> None:
    """The pipe fills, the rest waits in the buffer, the next message past the bound is refused
    whole; a reader then gets every byte, then end-of-file."""

    async def scenario() -> bytes:
        read_end, write_end = os.pipe()
        channel = PipeInput(write_end)
        chunk = b"x" * 65536
        sent = 0
        refused = None
        while refused is None:
            try:
                channel.send(chunk)  # returns at once: never blocks the loop
            except InputRefused as exc:
                refused = exc
            else:
                sent += len(chunk)
        assert "has not read" in str(refused)
        assert sent >= MAX_PENDING
        channel.close()
        received = bytearray()
        os.set_blocking(read_end, False)
        while True:
            try:
                data = os.read(read_end, 1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.001)  # the loop flushes the buffer as the pipe drains
                continue
            if not data:
                break
            received += data
        os.close(read_end)
        assert len(received) == sent
        return bytes(received[:1])

    assert asyncio.run(scenario()) == b"x"
