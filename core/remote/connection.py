"""One multiplexed SSH connection per host: reconnect with capped backoff, health, channels.

Every attempt on a host shares its one connection (asyncssh multiplexes channels over it). A
connection that cannot be made puts the host into backoff (doubling from BACKOFF_FIRST up to
BACKOFF_MAX, with jitter): until then every call fails at once with HostUnreachable, so a dead
host costs one try per backoff period, never a storm. Health is what the pool places by: up or
not, the latency of the last `true` round trip, the failures in a row.

The host is untrusted: no agent forwarding, no X11, no ssh config file read, only the named
identity; host keys are always checked against the named known_hosts file.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from corral.core.plan.hosts import HostSpec
from corral.core.remote.remote import Completed, HostUnreachable, RemoteError
from corral.core.remote.runner import Runner

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
KEEPALIVE_INTERVAL = 2.0
KEEPALIVE_COUNT = 3
"""A silent host is known dead after about six seconds."""
CONNECT_TIMEOUT = 10.0


@dataclass
class Health:
    """What the pool knows of a host, for placing and for `corral hosts`."""

    up: bool = False
    latency: float | None = None
    """Seconds of the last `true` round trip."""
    last_ok: float | None = None
    """Wall-clock time of the last successful call."""
    failures: int = 0
    """Connection attempts that failed in a row."""
    error: str = ""
    retry_at: float = 0.0
    """Monotonic time before which no new connection is tried."""


class _Client(asyncssh.SSHClient):
    def __init__(self, on_lost: Callable[[Exception | None], None]) -> None:
        self.on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost(exc)


def _expand(path: str) -> str:
    return str(Path(path).expanduser())


def key_problem(spec: HostSpec, exc: BaseException) -> str:
    """Words for a failed login that name the fix."""
    where = f"{spec.hostname}:{spec.port}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return (
            f"host {spec.name!r} ({where}): its host key is not in {spec.known_hosts} or differs "
            f"from it; if the host is the one you mean, add its key: ssh-keyscan -p {spec.port} "
            f"{spec.hostname} >> {spec.known_hosts}"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return (
            f"host {spec.name!r} ({where}): login as {spec.user!r} with {spec.identity} was "
            "refused; add its public key to the user's authorized_keys on the host"
        )
    if isinstance(exc, OSError | TimeoutError):
        return f"host {spec.name!r} ({where}) cannot be reached: {exc or type(exc).__name__}"
    return f"host {spec.name!r} ({where}): {type(exc).__name__}: {exc}"


class HostConnection:
    """The connection to one host, made on first use and again after it drops."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.health = Health()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connecting: asyncio.Lock | None = None
        self._up_hooks: list[Callable[[], None]] = []
        self._down_hooks: list[Callable[[], None]] = []
        self.connects = 0
        self.closed = False
        self._runner: Runner | None = None
        self._runner_lock: asyncio.Lock | None = None
        self.runner_unavailable = ""
        """Why this host runs each script on a channel of its own (no `python3` there)."""

    # -- the connection ---------------------------------------------------------------------

    def on_up(self, hook: Callable[[], None]) -> None:
        """Call `hook` each time a new connection is made (not the first)."""
        self._up_hooks.append(hook)

    def on_down(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the connection drops or cannot be made."""
        self._down_hooks.append(hook)

    def _lost(self, exc: Exception | None) -> None:
        self._conn = None
        self._runner = None
        self.health.up = False
        self.health.error = f"the connection dropped: {exc}" if exc else "the connection closed"
        if self.closed:
            return
        for hook in list(self._down_hooks):
            hook()

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, made now if there is none; HostUnreachable if it cannot be."""
        if self._conn is not None:
            return self._conn
        if self.closed:
            raise HostUnreachable(f"host {self.name!r}: the pool is closed")
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is not None:
                return self._conn
            now = time.monotonic()
            if now < self.health.retry_at:
                raise HostUnreachable(
                    f"{self.health.error} (next try in {self.health.retry_at - now:.1f}s)"
                )
            try:
                self._conn = await self._connect()
            except (OSError, TimeoutError, asyncssh.Error) as exc:
                self._failed(key_problem(self.spec, exc))
                raise HostUnreachable(self.health.error) from None
            self.health.up = True
            self.health.failures = 0
            self.health.error = ""
            self.health.last_ok = time.time()
            self.connects += 1
            if self.connects > 1:
                for hook in list(self._up_hooks):
                    hook()
            return self._conn

    def _failed(self, error: str) -> None:
        health = self.health
        health.up = False
        health.failures += 1
        health.error = error
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (health.failures - 1))
        health.retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
        if not self.closed:
            for hook in list(self._down_hooks):
                hook()

    async def _connect(self) -> asyncssh.SSHClientConnection:
        spec = self.spec
        identity = _expand(spec.identity)
        known = _expand(spec.known_hosts)
        for label, path in (("identity", identity), ("known_hosts", known)):
            if not await asyncio.to_thread(Path(path).is_file):
                raise RemoteError(
                    f"host {spec.name!r}: its {label} file {path} does not exist; "
                    + (
                        f"add the host's key with: ssh-keyscan -p {spec.port} {spec.hostname} >> {path}"
                        if label == "known_hosts"
                        else "name the private key corral logs in with"
                    )
                )
        conn, _ = await asyncio.wait_for(
            asyncssh.create_connection(
                lambda: _Client(self._lost),
                spec.hostname,
                spec.port,
                username=spec.user,
                client_keys=[identity],
                known_hosts=known,
                agent_path=None,
                agent_forwarding=False,
                x11_forwarding=False,
                config=None,
                password=None,
                kbdint_auth=False,
                keepalive_interval=KEEPALIVE_INTERVAL,
                keepalive_count_max=KEEPALIVE_COUNT,
                login_timeout=CONNECT_TIMEOUT,
            ),
            CONNECT_TIMEOUT,
        )
        return conn

    async def wait_up(self, deadline: float) -> bool:
        """Try to get a connection until the monotonic `deadline`; whether one was made."""
        while True:
            with contextlib.suppress(HostUnreachable, RemoteError):
                await self.connection()
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            await asyncio.sleep(max(0.05, min(self.health.retry_at, deadline) - now))

    async def _runner_on(self, conn: asyncssh.SSHClientConnection) -> Runner | None:
        """The connection's command runner (core/remote/runner.py), started on first use; None
        where it cannot run (then each script gets a channel of its own)."""
        if self.runner_unavailable:
            return None
        if self._runner_lock is None:
            self._runner_lock = asyncio.Lock()
        async with self._runner_lock:
            if self._runner is not None and self._runner.broken is None and conn is self._conn:
                return self._runner
            try:
                self._runner = await _start_runner(conn, self.name)
            except (asyncssh.Error, RemoteError, TimeoutError, OSError) as exc:
                if self._conn is not conn:
                    raise HostUnreachable(f"host {self.name!r}: the connection dropped") from None
                self.runner_unavailable = f"no command runner: {exc}"
                return None
            return self._runner

    async def check(self) -> float:
        """The latency of a `true` round trip (the health check); raises HostUnreachable."""
        started = time.monotonic()
        await self.sh("true", timeout=CONNECT_TIMEOUT)
        latency = time.monotonic() - started
        self.health.latency = latency
        return latency

    def close(self) -> None:
        self.closed = True
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- commands ---------------------------------------------------------------------------

    async def sh(
        self,
        script: str,
        *,
        stdin: bytes | Path | None = None,
        stdout: Path | None = None,
        timeout: float = 120.0,  # noqa: ASYNC109
    ) -> Completed:
        """core/remote/remote.py `Remote.sh`: with no `stdin` the script goes as `sh -s`'s input
        (never on a command line another user of the host could read); else as `sh -c`."""
        conn = await self.connection()
        runner = await self._runner_on(conn)
        if runner is not None:
            return await self._on_runner(runner, script, stdin, stdout, timeout)
        return await self._on_channel(conn, script, stdin, stdout, timeout)

    async def follow(self, command: str, on_stdout: Callable[[bytes], None]) -> None:
        """Run `command` (nothing secret in it) until it ends, each piece of its stdout given to
        `on_stdout` as it comes: on the runner, else on a channel of its own."""
        conn = await self.connection()
        runner = await self._runner_on(conn)
        if runner is not None:
            await runner.run(command, None, on_stdout)
            return
        try:
            process = await conn.create_process(command, encoding=None, stdin=asyncssh.DEVNULL)
            try:
                while chunk := await process.stdout.read(1 << 16):
                    on_stdout(chunk)
                await process.wait()
            finally:
                process.close()
        except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, ConnectionError) as exc:
            raise HostUnreachable(f"host {self.name!r}: {exc}") from None

    async def _on_runner(
        self,
        runner: Runner,
        script: str,
        stdin: bytes | Path | None,
        stdout: Path | None,
        timeout: float,  # noqa: ASYNC109
    ) -> Completed:
        """Through the command runner: a file's bytes in and out go through memory."""
        data = await asyncio.to_thread(stdin.read_bytes) if isinstance(stdin, Path) else stdin
        try:
            done = await asyncio.wait_for(runner.run(script, data), timeout)
        except TimeoutError:
            raise RemoteError(f"host {self.name!r}: a command took over {timeout:g}s") from None
        self.health.last_ok = time.time()
        if stdout is not None:
            await asyncio.to_thread(stdout.write_bytes, done.stdout)
            return Completed(done.status, b"", done.stderr)
        return done

    async def _on_channel(
        self,
        conn: asyncssh.SSHClientConnection,
        script: str,
        stdin: bytes | Path | None,
        stdout: Path | None,
        timeout: float,  # noqa: ASYNC109
    ) -> Completed:
        """On a channel of its own (a host without the runner)."""
        command = "sh -s" if stdin is None else f"sh -c {shlex.quote(script)}"
        data: Any = script.encode() if stdin is None else stdin
        try:
            if isinstance(data, Path) or stdout is not None:
                with contextlib.ExitStack() as files:
                    source = (
                        files.enter_context(data.open("rb")) if isinstance(data, Path) else None
                    )
                    sink = files.enter_context(stdout.open("wb")) if stdout is not None else None
                    result = await conn.run(
                        command,
                        input=None if source is not None else data,
                        stdin=source if source is not None else asyncssh.PIPE,
                        stdout=sink if sink is not None else asyncssh.PIPE,
                        encoding=None,
                        timeout=timeout,
                    )
            else:
                result = await conn.run(command, input=data, encoding=None, timeout=timeout)
        except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, ConnectionError) as exc:
            raise HostUnreachable(f"host {self.name!r}: {exc}") from None
        except asyncssh.TimeoutError:
            raise RemoteError(f"host {self.name!r}: a command took over {timeout:g}s") from None
        self.health.last_ok = time.time()
        out = result.stdout if isinstance(result.stdout, bytes) else b""
        err = result.stderr if isinstance(result.stderr, bytes) else b""
        status = result.exit_status if result.exit_status is not None else 255
        return Completed(status, out, err)


async def _start_runner(conn: asyncssh.SSHClientConnection, name: str) -> Runner:
    process = await conn.create_process(Runner.command(), encoding=None)
    runner = Runner(process, name)
    probe = await asyncio.wait_for(runner.run("echo corral-runner", None), CONNECT_TIMEOUT)
    if probe.stdout.strip() != b"corral-runner":
        runner.close()
        raise RemoteError(probe.problem() or "no answer")
    return runner


class HostPool:
    """The hosts of a run, each with its connection and its free slots."""

    def __init__(self, specs: list[HostSpec]) -> None:
        self.hosts = {spec.name: HostConnection(spec) for spec in specs}
        self.placed = dict.fromkeys(self.hosts, 0)
        self._slots: dict[str, asyncio.Semaphore] = {}

    def free(self, name: str) -> int:
        return self.hosts[name].spec.slots - self.placed[name]

    def choose(self) -> str:
        """The healthy host with the most free slots (up, or not tried yet; a host that failed
        is healthy again once the background reconnection reaches it); if none is healthy, the
        one with the most free slots anyway (its attempt fails and is retried, and by then
        another may be up)."""

        def healthy(name: str) -> bool:
            host = self.hosts[name]
            health = host.health
            return health.up or (host.connects == 0 and health.failures == 0)

        ranked = sorted(self.hosts, key=lambda name: (not healthy(name), -self.free(name), name))
        if not ranked:
            raise RemoteError("the ssh runtime has no hosts; add [[host]] tables to the plan")
        return ranked[0]

    def take(self, name: str) -> None:
        self.placed[name] += 1

    def give(self, name: str) -> None:
        self.placed[name] = max(0, self.placed[name] - 1)

    def slot(self, name: str) -> asyncio.Semaphore:
        """Held by an attempt from its prepare to its release: at most `slots` run at once."""
        if name not in self._slots:
            self._slots[name] = asyncio.Semaphore(self.hosts[name].spec.slots)
        return self._slots[name]

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()
