"""The state a question puts an agent in (fold) and the notice it raises (core/log/notices.py):
pure functions over events, so checked on events made here."""

from __future__ import annotations

from corral.core.log import events as ev
from corral.core.log.notices import WAITING_FOR_HUMAN, NoticeWatch
from corral.core.log.state import RunState, apply


def _run(*events: ev.EventBase) -> tuple[RunState, list[tuple[str | None, str]]]:
    state, watch, noticed = RunState(), NoticeWatch(), []
    for seq, event in enumerate(events, start=1):
        event.seq = seq
        apply(state, event)  # type: ignore[arg-type]
        notice = watch.observe(state, event)  # type: ignore[arg-type]
        if notice is not None:
            noticed.append((notice.agent, notice.state))
    return state, noticed


START = (
    ev.RunStarted(
        run_id="r",
        name="t",
        repo="/r",
        base_ref="main",
        snapshot="0" * 40,
        worktree_root="/w",
        plan_sha256="0" * 64,
        max_parallel=1,
        required_successes=1,
        engine=ev.EngineInfo(pid=1, start_time=0.0, host="h", user="u"),
        agents=[ev.AgentSummary(id="a", kind="coding", command=["x"])],
    ),
    ev.AgentQueued(agent="a", attempt=1),
    ev.AgentStarting(
        agent="a", attempt=1, workspace="/w/a", branch="b", output_dir="/o", log_path="/l"
    ),
    ev.AgentStarted(agent="a", attempt=1, pid=10),
)


def test_a_question_waits_for_a_human_and_an_answer_resumes_running() -> None:
    asked = ev.HumanAsked(
        agent="a", attempt=1, question_id="q1", question="Go?", choices=["y"], timeout=5
    )
    state, noticed = _run(*START, asked)
    agent = state.agents["a"]
    assert agent.state == agent.attempts[-1].state == "waiting_for_human"
    assert agent.question is not None
    assert agent.question.question == "Go?"
    assert noticed == [("a", WAITING_FOR_HUMAN)]
    answered = ev.HumanAnswered(agent="a", attempt=1, question_id="q1", answer="y", by="p")
    again = ev.HumanAsked(agent="a", attempt=1, question_id="q2", question="And?", timeout=5)
    state, noticed = _run(*START, asked, answered, again)
    assert noticed == [("a", WAITING_FOR_HUMAN), ("a", WAITING_FOR_HUMAN)]  # each question
    closed = ev.HumanUnanswered(agent="a", attempt=1, question_id="q2", reason="timeout")
    state, _ = _run(*START, asked, answered, again, closed)
    assert state.agents["a"].state == "running"
    assert state.agents["a"].question is None


def test_an_answer_to_an_older_question_leaves_the_newer_one_open() -> None:
    first = ev.HumanAsked(agent="a", attempt=1, question_id="q1", question="1?", timeout=5)
    second = ev.HumanAsked(agent="a", attempt=1, question_id="q2", question="2?", timeout=5)
    late = ev.HumanAnswered(agent="a", attempt=1, question_id="q1", answer="x", by="p")
    state, _ = _run(*START, first, second, late)
    assert state.agents["a"].state == "waiting_for_human"
    assert state.agents["a"].question is not None
    assert state.agents["a"].question.question_id == "q2"


def test_the_attempt_ending_closes_its_question() -> None:
    asked = ev.HumanAsked(agent="a", attempt=1, question_id="q1", question="Go?", timeout=5)
    ended = ev.AgentFinished(agent="a", attempt=1, outcome="failed", exit_code=1)
    state, _ = _run(*START, asked, ended)
    assert state.agents["a"].state == "failed"
    assert state.agents["a"].question is None
