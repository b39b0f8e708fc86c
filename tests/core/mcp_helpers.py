"""Agents that are MCP clients: a script that starts `corral mcp agent` inside its attempt with
the MCP SDK's own stdio client, and calls corral's tools as a model's CLI would."""

from __future__ import annotations

import textwrap
from pathlib import Path

PREAMBLE = '''\
import json, os, sys, time
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

marks = Path(sys.argv[1])
SERVER = StdioServerParameters(
    command=sys.executable,
    args=["-m", "corral.core.cli", "mcp", "agent"],
    env=dict(os.environ),  # the attempt's: CORRAL_SOCKET, CORRAL_AGENT_TOKEN, the marks
)


async def call(session, tool_name, /, **arguments):
    """(ok, the structured result or the error text) of one tool call."""
    result = await session.call_tool(tool_name, arguments)
    if result.is_error:
        return False, "".join(getattr(block, "text", "") for block in result.content)
    return True, result.structured_content


async def wait_file(path):
    while not path.exists():
        await anyio.sleep(0.01)


def mark(name, value):
    scratch = marks / (name + ".tmp")
    scratch.write_text(json.dumps(value))
    os.replace(scratch, marks / name)


async def main():
    async with stdio_client(SERVER) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await body(session)

'''


def mcp_script(directory: Path, name: str, body: str) -> Path:
    """A script whose `async def body(session)` is `body`; run it with the marks directory."""
    path = directory / name
    path.write_text(
        PREAMBLE
        + "async def body(session):\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        + "\n\n\nanyio.run(main)\n"
    )
    return path
