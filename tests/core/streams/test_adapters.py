"""Each CLI's adapter against the streams its real CLI wrote (tests/agents/samples/): tool calls,
tokens, cost, turns and the result, whichever way the bytes are cut; a bad line is counted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.core.streams import StreamTally, UnknownStream, adapter_for, load_prices
from corral.core.streams import activity as act
from corral.core.streams.prices import PriceTable

SAMPLES = Path(__file__).parents[2] / "agents" / "samples"


@dataclass(frozen=True)
class Expected:
    tools: list[str]
    tokens_in: int
    tokens_out: int
    cost: float | None
    cost_source: str | None
    turns: int
    result: str
    model: str | None


EXPECTED = {
    "claude.jsonl": Expected(
        ["Write"], 63542, 39, 0.192936, "cli", 2, "Created hello.txt.", "claude-sonnet-4-5"
    ),
    "claude-mcp.jsonl": Expected(
        ["corral.note"], 63561, 11, 0.192555, "cli", 2, "Noted.", "claude-sonnet-4-5"
    ),
    "codex.jsonl": Expected(["file_change"], 20074, 10, None, None, 1, "Created hello.txt.", None),
    "codex-mcp.jsonl": Expected(["corral.note"], 31788, 19, None, None, 1, "Noted.", None),
    "codex-mcp-namespace.jsonl": Expected(
        ["corral.note"], 22528, 12, None, None, 1, "Noted.", None
    ),
    "gemini.jsonl": Expected(
        ["write_file"], 24864, 40, 0.03148, "prices", 2, "Created hello.txt.", "gemini-2.5-pro"
    ),
    "gemini-mcp.jsonl": Expected(
        ["corral.note"], 25028, 12, 0.031405, "prices", 2, "Noted.", "gemini-2.5-pro"
    ),
    "opencode.jsonl": Expected(["write"], 15710, 40, None, None, 2, "Created hello.txt.", None),
    "opencode-mcp.jsonl": Expected(["corral.note"], 15789, 12, None, None, 2, "Noted.", None),
    "aider.txt": Expected(
        ["edit"], 930, 18, None, None, 1, "I'll create the file.", "openai/scripted-model"
    ),
}


def _stream(name: str) -> str:
    return name.split(".")[0].split("-")[0]


def read(
    name: str, data: bytes, chunk: int, prices: PriceTable | None = None
) -> tuple[StreamTally, list[act.Activity], int]:
    adapter = adapter_for(_stream(name))
    tally = StreamTally(prices=prices or load_prices(None))
    seen: list[act.Activity] = []
    for start in range(0, len(data), chunk):
        seen += adapter.feed(data[start : start + chunk])
    seen += adapter.finish()
    tally.add(seen)
    return tally, seen, adapter.malformed


def test_every_sample_has_its_expectation() -> None:
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_sample_reads_to_its_tool_calls_tokens_cost_turns_and_result(
    name: str, chunk: int
) -> None:
    expected = EXPECTED[name]
    tally, seen, malformed = read(name, (SAMPLES / name).read_bytes(), chunk)
    assert malformed == 0
    assert [a.name for a in seen if isinstance(a, act.ToolCall)] == expected.tools
    assert tally.tool_calls == len(expected.tools)
    assert (tally.tokens_in, tally.tokens_out) == (expected.tokens_in, expected.tokens_out)
    cost, source = tally.cost()
    assert source == expected.cost_source
    assert cost == pytest.approx(expected.cost) if expected.cost is not None else cost is None
    assert tally.turns == expected.turns
    assert tally.model == expected.model
    results = [a for a in seen if isinstance(a, act.FinalResult)]
    assert results
    assert results[-1].text == expected.result
    assert not results[-1].is_error


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if "-mcp" in n))
def test_corral_s_mcp_tools_are_named_alike_for_every_cli(name: str) -> None:
    """The samples called the `note` tool of an MCP server named `corral`: Claude Code saw it
    as `mcp__corral__note`, Codex in its namespace `mcp__corral`, Gemini CLI as
    `mcp_corral_note`, opencode as `corral_note`; the events say `corral.note` for each."""
    _, seen, _ = read(name, (SAMPLES / name).read_bytes(), 1 << 20)
    calls = [a for a in seen if isinstance(a, act.ToolCall)]
    assert [(c.name, c.summary) for c in calls] == [
        ("corral.note", "a note from the scripted model")
    ]


@pytest.mark.parametrize(
    ("stream", "line", "name"),
    [
        ("claude", {"type": "tool_use", "name": "mcp__github__search", "input": {}}, None),
        ("claude", {"type": "tool_use", "name": "mcp__corral__", "input": {}}, None),
        ("gemini", None, "mcp_other_note"),
        ("opencode", None, "corralx"),
    ],
)
def test_other_tools_keep_their_names(
    stream: str, line: dict[str, object] | None, name: str | None
) -> None:
    if stream == "claude":
        assert line is not None
        message = {"id": "m", "content": [line]}
        raw = json.dumps({"type": "assistant", "message": message})
        expected = str(line["name"])
    elif stream == "gemini":
        raw = json.dumps({"type": "tool_use", "tool_name": name, "parameters": {}})
        expected = str(name)
    else:
        part = {"tool": name, "state": {"status": "completed", "input": {}}}
        raw = json.dumps({"type": "tool_use", "part": part})
        expected = str(name)
    seen = adapter_for(stream).feed(raw.encode() + b"\n")
    assert [a.name for a in seen if isinstance(a, act.ToolCall)] == [expected]


def test_a_tool_call_says_what_it_acts_on() -> None:
    _, seen, _ = read("claude.jsonl", (SAMPLES / "claude.jsonl").read_bytes(), 4096)
    (tool,) = [a for a in seen if isinstance(a, act.ToolCall)]
    assert tool.summary.endswith("repo/hello.txt")


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.endswith(".jsonl")])
def test_a_malformed_line_is_counted_and_the_rest_still_read(name: str) -> None:
    lines = (SAMPLES / name).read_bytes().splitlines(keepends=True)
    broken = b"".join([lines[0], b'{"no type": 12}\n', b"{not json\n", *lines[1:]])
    tally, _, malformed = read(name, broken, 64)
    assert malformed == 2
    assert tally.tokens_in == EXPECTED[name].tokens_in


def test_lines_that_are_not_json_are_the_cli_s_other_output_not_malformed() -> None:
    adapter = adapter_for("codex")
    assert adapter.feed(b"Reading prompt from stdin...\n[corral] setup: make\n") == []
    assert adapter.malformed == 0


def test_a_line_too_long_to_read_is_skipped_and_counted() -> None:
    from corral.core.streams.base import MAX_LINE

    adapter = adapter_for("claude")
    adapter.feed(b'{"type":"user","x":"' + b"a" * (MAX_LINE + 10))
    adapter.feed(b'a"}\n{"type":"system","subtype":"init","model":"m"}\n')
    assert adapter.malformed == 1
    assert adapter.finish() == []


def test_claude_counts_a_message_once_though_each_of_its_lines_repeats_the_usage() -> None:
    adapter = adapter_for("claude")
    line = b'{"type":"assistant","message":{"id":"m1","content":[],"usage":{"input_tokens":100,"output_tokens":5}}}\n'
    seen = adapter.feed(line + line)
    usage = [a for a in seen if isinstance(a, act.Usage)]
    assert usage[-1].input_tokens == 100
    assert [a.number for a in seen if isinstance(a, act.Turn)] == [1]


def test_aider_reads_thousands_and_its_session_cost() -> None:
    adapter = adapter_for("aider")
    seen = adapter.feed(
        b"Model: gpt-5 with diff edit format\n"
        b"Tokens: 12k sent, 1.5k cache hit, 250 received. Cost: $0.02 message, $0.05 session.\n"
        b"Tokens: 2.1k sent, 100 received. Cost: $0.01 message, $0.06 session.\n"
    )
    usage = [a for a in seen if isinstance(a, act.Usage)][-1]
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (14100, 350, 1500)
    assert [a.usd for a in seen if isinstance(a, act.Cost)][-1] == 0.06


def test_aider_says_when_it_waits_for_an_answer() -> None:
    seen = adapter_for("aider").feed(b"Add file.py to the chat? (Y)es/(N)o [Yes]:\n")
    assert [type(a) for a in seen] == [act.WaitingForInput]


def test_errors_and_retries_are_told_apart() -> None:
    codex = adapter_for("codex").feed(
        b'{"type":"error","message":"stream error: 429; retrying 1/5 in 200ms"}\n'
        b'{"type":"turn.failed","error":{"message":"quota exceeded"}}\n'
    )
    assert [type(a) for a in codex] == [act.Retry, act.StreamError]
    claude = adapter_for("claude").feed(
        b'{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":9}\n'
    )
    assert any(isinstance(a, act.StreamError) for a in claude)
    assert [a.is_error for a in claude if isinstance(a, act.FinalResult)] == [True]


def test_an_unknown_adapter_names_the_known_ones() -> None:
    with pytest.raises(UnknownStream, match="claude, codex, gemini, opencode"):
        adapter_for("cursor")
