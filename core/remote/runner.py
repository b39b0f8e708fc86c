"""One long-lived command runner per host: scripts without a new SSH session each.

Each exec channel makes sshd start a session and the login's shell with its start-up files
(tens of milliseconds on a plain host, a quarter of a second where `.bashrc` starts pyenv), and
an attempt runs about ten scripts. So the connection keeps one channel running a small
standard-library Python loop on the host (`RUNNER`, given as the command, it holds nothing
secret) that reads framed requests, runs each script with `sh -s` (the script on its stdin, so
in memory only) in a thread, and frames back its stdout, stderr and exit status. Requests are
answered in any order, by id. A host without `python3` falls back to a channel per script.

Frames, both ways: a 4-byte id, a 1-byte kind, a 4-byte length, the bytes. Requests: kind `s`
(the script) then `n` (run it as `sh -s`'s input) or `i` (run it as `sh -c SCRIPT`, these bytes
its stdin: for data, never for a script with secrets). Answers: `o` stdout, `e` stderr, `x` the
exit status as text (last).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.core.remote.remote import Completed, HostUnreachable

RUNNER = r"""
import os, struct, subprocess, sys, threading
out, inp, lock = sys.stdout.buffer, sys.stdin.buffer, threading.Lock()
def send(i, kind, data):
    with lock:
        out.write(struct.pack(">IcI", i, kind, len(data)) + data)
        out.flush()
def run(i, script, data):
    e, x = b"", 255
    try:
        argv = ["sh", "-s"] if data is None else ["sh", "-c", script.decode()]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        feed = script if data is None else data
        def write():
            try:
                p.stdin.write(feed)
                p.stdin.close()
            except OSError:
                pass
        errors = []
        threading.Thread(target=write, daemon=True).start()
        reader = threading.Thread(target=lambda: errors.append(p.stderr.read()), daemon=True)
        reader.start()
        while True:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            send(i, b"o", chunk)
        reader.join()
        x, e = p.wait(), (errors[0] if errors else b"")
    except Exception as exc:
        e = repr(exc).encode()
    send(i, b"e", e); send(i, b"x", str(x).encode())
pending = {}
while True:
    head = inp.read(9)
    if len(head) < 9:
        break
    i, kind, size = struct.unpack(">IcI", head)
    body = inp.read(size)
    if kind == b"s":
        pending[i] = body
    else:
        data = body if kind == b"i" else None
        threading.Thread(target=run, args=(i, pending.pop(i), data), daemon=True).start()
"""


@dataclass
class _Call:
    done: asyncio.Future[Completed]
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    on_stdout: Callable[[bytes], None] | None = None
    """Given each piece of stdout as it comes (then `Completed.stdout` is empty)."""


class Runner:
    """The client side: send a script, get its Completed; every call fails with
    HostUnreachable once the channel is gone."""

    def __init__(self, process: Any, name: str) -> None:
        self.process = process
        self.name = name
        self.calls: dict[int, _Call] = {}
        self.next_id = 1
        self.broken: str | None = None
        self.reader = asyncio.create_task(self._read(), name=f"runner-{name}")

    @staticmethod
    def command() -> str:
        return f"exec python3 -c {shlex.quote(RUNNER)}"

    async def run(
        self,
        script: str,
        stdin: bytes | None,
        on_stdout: Callable[[bytes], None] | None = None,
    ) -> Completed:
        if self.broken is not None:
            raise HostUnreachable(self.broken)
        call_id = self.next_id
        self.next_id += 1
        call = _Call(asyncio.get_running_loop().create_future(), on_stdout=on_stdout)
        self.calls[call_id] = call
        body = script.encode()
        data = stdin or b""
        self.process.stdin.write(
            struct.pack(">IcI", call_id, b"s", len(body))
            + body
            + struct.pack(">IcI", call_id, b"n" if stdin is None else b"i", len(data))
            + data
        )
        try:
            return await asyncio.shield(call.done)
        finally:
            self.calls.pop(call_id, None)

    async def _read(self) -> None:
        stream = self.process.stdout
        try:
            while True:
                head = await stream.readexactly(9)
                call_id, kind, size = struct.unpack(">IcI", head)
                body = await stream.readexactly(size) if size else b""
                call = self.calls.get(call_id)
                if call is None:
                    continue
                if kind == b"o" and call.on_stdout is not None:
                    call.on_stdout(body)
                elif kind == b"o":
                    call.stdout += body
                elif kind == b"e":
                    call.stderr += body
                elif kind == b"x" and not call.done.done():
                    status = int(body) if body.strip().lstrip(b"-").isdigit() else 255
                    call.done.set_result(Completed(status, bytes(call.stdout), bytes(call.stderr)))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self._fail(f"host {self.name!r}: the command runner ended ({type(exc).__name__})")
        except asyncio.CancelledError:
            self._fail(f"host {self.name!r}: the command runner was closed")
            raise
        except Exception as exc:  # asyncssh's errors on a dropped connection
            self._fail(f"host {self.name!r}: the command runner ended: {exc}")

    def _fail(self, why: str) -> None:
        self.broken = why
        for call in self.calls.values():
            if not call.done.done():
                call.done.set_exception(HostUnreachable(why))

    def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(Exception):
            self.process.close()
