"""A stand-in for an agent CLI with an MCP client, for tests without an AI CLI: it reads a
Claude-style `--mcp-config` file (its one argument), starts the `corral` server as Claude Code
does (its own environment with the entry's `env` over it), and calls corral's tools in turn:
a heartbeat, a lock taken and released by its token, a finding. It prints each result and exits 1 if a
call failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    entry = config["mcpServers"]["corral"]
    server = subprocess.Popen(
        [entry["command"], *entry["args"]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **entry.get("env", {})},
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    ids = iter(range(1, 100))

    def send(method: str, params: dict[str, Any], notify: bool = False) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            message["id"] = next(ids)
        server.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]
        if notify:
            return None
        answer = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        if "result" not in answer:
            raise SystemExit(f"{method}: {answer}")
        return answer["result"]

    def call(tool: str, **arguments: Any) -> dict[str, Any]:
        result = send("tools/call", {"name": tool, "arguments": arguments})
        print(tool, json.dumps(result), flush=True)
        if result.get("isError"):
            raise SystemExit(1)
        data = result.get("structuredContent") or json.loads(result["content"][0]["text"])
        return dict(data.get("result", data))

    hello = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "fake", "version": "0"},
    }
    send("initialize", hello)
    send("notifications/initialized", {}, notify=True)
    call("heartbeat", progress=0.25, message="from inside")
    token = call("lock_acquire", name="db", ttl=30, wait=5, reason="a test")["token"]
    call("lock_release", name="db", token=token)
    call("report_finding", severity="low", title="A finding from inside", file="README.md")
    server.stdin.close()
    return server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
