"""A real Unix socket at a run's control socket that answers like the engine and records every
request: what the console sends (messages, keys, resizes), without an engine running."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path


class RecordingEngine:
    """A real Unix socket at the run's control socket that records requests and says ok."""

    def __init__(self, path: Path) -> None:
        self.requests: list[dict[str, object]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(json.loads(conn.makefile().readline()))
                conn.sendall(json.dumps({"ok": True, "data": {"attempt": 1}}).encode() + b"\n")

    def typed(self) -> str:
        return "".join(str(r["text"]) for r in self.requests if r["op"] == "input")
