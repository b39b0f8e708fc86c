"""A stdio MCP server with one tool, `note`, that appends its text to the file named by
`$MCP_NOTES`: how the tests see an agent CLI call an MCP tool the model asked for.

Run as `python -m tests.agents.mcp_stub` (or by path); newline-delimited JSON-RPC on stdio.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TOOL = {
    "name": "note",
    "description": "Write a note for the test to read.",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}


def handle(message: dict[str, object]) -> dict[str, object] | None:
    """The result for a request; None for a notification."""
    method = message.get("method")
    if "id" not in message:
        return None
    if method == "initialize":
        params = message.get("params")
        version = params.get("protocolVersion") if isinstance(params, dict) else None
        result: dict[str, object] = {
            "protocolVersion": version or "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "corral-test", "version": "0"},
        }
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        params = message.get("params")
        arguments = params.get("arguments") if isinstance(params, dict) else None
        text = str(arguments.get("text")) if isinstance(arguments, dict) else ""
        with Path(os.environ["MCP_NOTES"]).open("a", encoding="utf-8") as notes:
            notes.write(text + "\n")
        result = {"content": [{"type": "text", "text": "noted"}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        error = {"code": -32601, "message": f"unknown method {method}"}
        return {"jsonrpc": "2.0", "id": message["id"], "error": error}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = handle(json.loads(line))
        if answer is not None:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
