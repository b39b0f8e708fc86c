"""A scripted model server on loopback, so agent CLIs run for real with no key and no network.

It speaks Anthropic Messages, OpenAI Responses and Chat Completions, and Gemini
generateContent; every request (path, headers without secrets, JSON body) is recorded for the
tests to assert on. What it answers comes from a `Script` (tests/agents/script.py). Anything
else a CLI asks for at start (model lists, token counts, telemetry) gets a minimal answer.

Run it on its own for a demo: `python -m tests.agents.model_server SCRIPT.json [--port N]`.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.agents import wire_anthropic, wire_gemini, wire_openai
from tests.agents.script import Reply, Script, choose_reply
from tests.agents.wire import Answer

SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "cookie", "api-key"}
MODEL = "scripted-model"
"""The model every listing offers; clients may ask for any name, the answer is the same."""


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: object
    api: str
    """anthropic, responses, chat, gemini, other, or error (the server failed to answer)."""
    turn: int | None
    """The script turn answered; None for a side request or anything not a model call."""
    tool_call: str | None
    """The tool the answer called, if it called one."""


class ModelServer:
    """The server, its script and its record. Use `running()` to serve on a random port."""

    def __init__(
        self, script: Script, host: str = "127.0.0.1", port: int = 0, log: Path | None = None
    ) -> None:
        self.script = script
        self.log = log
        """Each request is also appended here as a JSON line when it arrives, if set."""
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._http = ThreadingHTTPServer((host, port), _handler_for(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self.holding = threading.Event()
        """Set while a request for a `hold` turn waits for `release`."""
        self._gate = threading.Event()

    def release(self) -> None:
        """Answer the held turn (and any later one) now."""
        self._gate.set()

    def hold(self, reply: Reply | None) -> None:
        """Wait here, in the request's thread, if the reply's turn is held (at most a minute)."""
        turns = self.script.turns
        if reply is None or reply.turn is None or reply.turn >= len(turns):
            return
        if turns[reply.turn].hold and not self._gate.is_set():
            self.holding.set()
            self._gate.wait(60)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def model_calls(self, api: str | None = None) -> list[Recorded]:
        """The requests that reached a model endpoint (of one API, if given)."""
        return [r for r in self.requests if r.api != "other" and api in (None, r.api)]

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)
            if self.log:
                with self.log.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(asdict(request)) + "\n")

    def start(self) -> None:
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread (the standalone demo server) until interrupted."""
        try:
            self._http.serve_forever()
        except KeyboardInterrupt:
            self._http.server_close()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


@contextmanager
def running(script: Script, log: Path | None = None) -> Iterator[ModelServer]:
    server = ModelServer(script, log=log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _route(
    server: ModelServer, method: str, path: str, body: object
) -> tuple[str, Answer, Reply | None]:
    """(api, answer, reply) for one request."""
    data = body if isinstance(body, dict) else {}
    script = server.script
    if method == "POST" and path.endswith("/messages/count_tokens"):
        return "other", wire_anthropic.count_tokens(data), None
    if method == "POST" and path.endswith("/messages"):
        reply = choose_reply(
            script, wire_anthropic.tool_results(data), wire_anthropic.offered_tools(data)
        )
        return "anthropic", wire_anthropic.answer(data, reply), reply
    if method == "POST" and path.endswith("/responses"):
        reply = choose_reply(
            script,
            wire_openai.responses_tool_results(data),
            wire_openai.responses_offered_tools(data),
        )
        return "responses", wire_openai.responses_answer(data, reply), reply
    if method == "POST" and path.endswith("/chat/completions"):
        reply = choose_reply(
            script, wire_openai.chat_tool_results(data), wire_openai.chat_offered_tools(data)
        )
        return "chat", wire_openai.chat_answer(data, reply), reply
    if method == "POST" and ":" in path.rsplit("/", 1)[-1]:
        model, action = path.rsplit("/", 1)[-1].split(":", 1)
        if action == "countTokens":
            return "other", wire_gemini.count_tokens(data), None
        if action in ("generateContent", "streamGenerateContent"):
            reply = choose_reply(
                script, wire_gemini.tool_results(data), wire_gemini.offered_tools(data)
            )
            stream = action == "streamGenerateContent"
            return "gemini", wire_gemini.answer(data, reply, model, stream), reply
    if method == "GET" and path.endswith("/models"):
        return "other", Answer(body=_model_listing()), None
    return "other", Answer(body={}, status=200 if method == "POST" else 404), None


def _model_listing() -> dict[str, object]:
    """One body every client's model-list parser accepts: OpenAI and Anthropic read `data`
    (each entry carries both APIs' fields), Gemini reads `models`."""
    both = {**wire_openai.model_entry(MODEL), **wire_anthropic.model_entry(MODEL)}
    listing = {**wire_anthropic.models(MODEL), **wire_gemini.models(MODEL), "object": "list"}
    return {**listing, "data": [both]}


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the record is the log."""

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: object = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            try:
                api, answer, reply = _route(server, self.command, split.path, body)
            except Exception as error:  # the record and the client both say what broke
                error_body: dict[str, object] = {
                    "error": {"type": "server_error", "message": repr(error)}
                }
                api, answer, reply = "error", Answer(body=error_body, status=500), None
            headers = {
                k.lower(): v for k, v in self.headers.items() if k.lower() not in SECRET_HEADERS
            }
            turn, tool = (reply.turn, reply.tool_name) if reply else (None, None)
            record = Recorded(self.command, split.path, split.query, headers, body, api, turn, tool)
            server.record(record)
            server.hold(reply)
            self._send(answer)

        def _send(self, answer: Answer) -> None:
            self.send_response(answer.status)
            if answer.events:
                payload = b"".join(event.encode() for event in answer.events)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
            else:
                payload = json.dumps(answer.body).encode()
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("script", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path, help="append each request here as a JSON line")
    args = parser.parse_args()
    server = ModelServer(Script.load(args.script), port=args.port, log=args.log)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
