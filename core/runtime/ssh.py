"""`ssh`: attempts on remote hosts of a pool, over one SSH connection per host (issue 16).

Placement picks the healthy host with the most free slots (core/remote/connection.py
`HostPool`). Prepare ships the snapshot as a git bundle into the host's cached repository (only
what it lacks, core/remote/shipping.py), makes a worktree there on the attempt's branch and
forwards the attempt's control socket to a relay that stamps every request with the attempt's
token (core/remote/relay.py). Start sends a launcher on `sh -s`'s input (the environment, secrets
included, never touches the host's disk) that starts the command in its own session with
stdin /dev/null and its output appended to a file on the host; a `tail --pid -f` channel copies
that file into the local `output.log`, so output written while the connection was down is
copied once it is back. Stopping signals the sessions and every process carrying the attempt's
mark (CORRAL_REMOTE_MARK) and confirms on the host that none is left. Collect commits leftovers
there and brings the branch back as a bundle, checked here (core/remote/shipping.py).

A host that drops off: its executions end `lost` once it has been down `lost_after`; their stop
is deferred to when the host is back (the attempt is over meanwhile: its token is no longer
honoured, its branch never fetched). Then the runtime forwards the old socket again, so what the
old agent says is refused by token and recorded, stops it and records what it committed late
as refused (docs/reliability.md T7). The plan's `verify` runs on the engine's host (`local`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import shlex
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from corral.core.log.event_types.agent import LateResultRefused
from corral.core.remote import agent_lib, scripts
from corral.core.remote.config import pool as host_pool
from corral.core.remote.connection import HostConnection, HostPool
from corral.core.remote.relay import relay
from corral.core.remote.remote import HostUnreachable, RemoteError
from corral.core.remote.shipping import REMOTE_GIT, ShipError, fetch_branch, ship_snapshot
from corral.core.runtime.base import (
    AttemptRef,
    AttemptRequest,
    CollectFailed,
    Ended,
    Execution,
    Identity,
    Placement,
    PlacementFailed,
    RuntimeSetup,
    StartFailed,
    Stopped,
)
from corral.core.runtime.kill import TerminateError
from corral.core.runtime.local import LocalRuntime

PASSED_ON = ("LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ")
"""The engine's variables a remote agent gets (the plan's `env` may set others): the locale and
terminal only; PATH, HOME and USER are the host login's own."""
OUTPUT_LIMIT = 64 << 20
"""Bytes of an attempt's CORRAL_OUTPUT brought back from the host at most."""


class SshIdentity(Identity):
    """A session on a host: its leader's pid, the host's boot id and the leader's start ticks
    (so a reused pid or a rebooted host is not it), and which command of the attempt it is."""

    host: str
    remote_pid: int
    boot_id: str
    remote_start: str
    index: int


@dataclass
class _Held:
    """What the runtime holds for one placed attempt on a host."""

    host: str
    dirs: scripts.AttemptDirs
    token: str
    engine_socket: Path
    output_dir: Path
    slot: bool = False
    listener: asyncssh.SSHListener | None = None
    next_index: int = 0
    executions: list[SshExecution] = field(default_factory=list)
    output_copied: bool = False
    stop_deferred: bool = False


class SshExecution:
    """One command of an attempt on a host; a task copies its output and learns its end."""

    def __init__(
        self, host: HostConnection, dirs: scripts.AttemptDirs, identity: SshIdentity, log_path: Path
    ) -> None:
        self.host = host
        self.dirs = dirs
        self._identity = identity
        self.log_path = log_path
        self.copied = 0
        self._task: asyncio.Task[Ended] | None = None

    @property
    def identity(self) -> SshIdentity:
        return self._identity

    @property
    def input(self) -> None:
        return None

    def begin(self) -> None:
        self._task = asyncio.create_task(self._follow(), name=f"ssh-{self.dirs.key}")

    async def wait(self, timeout: float | None) -> Ended | None:  # noqa: ASYNC109
        assert self._task is not None
        if self._task.cancelled():  # released: nothing follows it any more
            return Ended("lost", reason="it is no longer watched (its placement was released)")
        try:
            return await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            return None

    async def terminate(self, grace: float) -> Stopped:
        """Its whole attempt's processes on the host, confirmed; deferred when the host cannot
        be reached (the attempt's `stop_attempt` defers it the same way, T7)."""
        stopped = await _stop_on(self.host, self.dirs, grace)
        if stopped is None:
            return Stopped(
                details=[f"host {self.host.name!r} is unreachable: stopped when it is back"],
                deferred=True,
            )
        return stopped

    def cpu_seconds(self) -> float | None:
        return None

    def output_size(self) -> int | None:
        return self.copied

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _follow(self) -> Ended:
        """Copy the output while it runs; its end, or `lost` once the host is gone too long."""
        identity = self._identity
        with self.log_path.open("ab") as log:
            while True:
                try:
                    await self._copy(log, follow=True)
                    state = await self._copy(log, follow=False)
                    if state != "running":
                        return _ended(state)
                    continue
                except (HostUnreachable, asyncssh.Error, ConnectionError, OSError):
                    pass
                deadline = time.monotonic() + self.host.spec.lost_after
                if not await self.host.wait_up(deadline):
                    return Ended(
                        "lost",
                        reason=f"host {self.host.name!r} was unreachable for "
                        f"{self.host.spec.lost_after:g}s",
                    )
                try:
                    boot = (await self.host.sh(f"cat {scripts.BOOT_ID}")).text().strip()
                except (HostUnreachable, RemoteError):
                    continue
                if boot != identity.boot_id:
                    return Ended("lost", reason=f"host {self.host.name!r} rebooted")

    async def _copy(self, log: Any, *, follow: bool) -> str:
        """Copy its output from where the copy stopped: with `follow`, until its session leader
        ends; else what there is, then its state (`running`, `exited N`, `gone`)."""
        identity = self._identity
        command = scripts.tail_script(
            self.dirs, identity.index, self.copied, identity.remote_pid, follow
        )
        if not follow:  # one script on the host's runner: the rest of it, then its state
            status = scripts.status_script(
                self.dirs, identity.index, identity.remote_pid, identity.remote_start
            )
            done = await self.host.sh(f"{command.removeprefix('exec ')}\n{{ {status}}} >&2\n")
            log.write(done.stdout)
            log.flush()
            self.copied += len(done.stdout)
            words = done.stderr.decode("utf-8", "replace").strip().splitlines()
            return words[-1] if words else "gone"

        def copy(chunk: bytes) -> None:
            log.write(chunk)
            log.flush()
            self.copied += len(chunk)

        await self.host.follow(command, copy)
        return "running"


def _ended(state: str) -> Ended:
    words = state.split()
    if words[:1] == ["exited"] and len(words) == 2 and words[1].lstrip("-").isdigit():
        return Ended("exited", code=int(words[1]))
    return Ended("killed", reason="it ended without an exit status (killed)")


async def _stop_on(host: HostConnection, dirs: scripts.AttemptDirs, grace: float) -> Stopped | None:
    """Stop the attempt's processes on `host`, confirmed; None if the host is unreachable.
    Raises TerminateError when some outlive SIGKILL there."""
    try:
        result = await host.sh(scripts.stop_script(dirs, grace), timeout=grace + 30)
    except (HostUnreachable, RemoteError):
        return None
    numbers = result.text().split()
    if result.status != 0 or len(numbers) != 3 or not all(n.isdigit() for n in numbers):
        raise TerminateError(
            f"host {host.name!r}: the stop could not be confirmed: {result.problem()}", []
        )
    signalled, forced, remaining = (int(n) for n in numbers)
    if remaining:
        raise TerminateError(
            f"host {host.name!r}: {remaining} process(es) of the attempt outlived SIGKILL", []
        )
    return Stopped(stopped=signalled, forced=forced)


class SshRuntime:
    """Attempts on the hosts of a pool."""

    name = "ssh"

    def __init__(self, setup: RuntimeSetup) -> None:
        self.setup = setup
        self.pool = HostPool(host_pool(list(setup.hosts)))
        self.local = LocalRuntime(setup)
        self.held: dict[AttemptRef, _Held] = {}
        self.deferred: dict[str, dict[AttemptRef, _Held]] = {name: {} for name in self.pool.hosts}
        self.repo_id = hashlib.sha256(str(setup.repo_top.resolve()).encode()).hexdigest()[:16]
        self._ship_locks: dict[str, asyncio.Lock] = {}
        self._lib: agent_lib.AgentLib | None = None
        self._lib_on: set[str] = set()
        self._has_snapshot: set[str] = set()
        """Hosts known to hold the snapshot (shipped by this engine): no need to ask again."""
        self._background: set[asyncio.Task[None]] = set()
        self._reviving: set[str] = set()
        self.shipped: list[tuple[str, int]] = []
        """(host, bytes) of every snapshot shipment (bench/bench_ssh.py reads it)."""
        for name, host in self.pool.hosts.items():
            host.on_up(self._when_back(name))
            host.on_down(self._when_down(name))

    # -- placement --------------------------------------------------------------------------

    def _dirs(self, host: str, ref: AttemptRef) -> scripts.AttemptDirs:
        spec = self.pool.hosts[host].spec
        return scripts.AttemptDirs(spec.workdir, ref.run_id, ref.agent, ref.attempt, host)

    def _repo(self, host: str) -> str:
        return scripts.repo_dir(self.pool.hosts[host].spec.workdir, self.repo_id)

    def place(self, request: AttemptRequest) -> Placement:
        ref = request.ref
        host = self.pool.choose()
        self.pool.take(host)
        dirs = self._dirs(host, ref)
        env = {key: request.base_env[key] for key in PASSED_ON if key in request.base_env}
        env.update(request.plan_env)
        env.update(request.corral_env)
        env.update(
            {
                "CORRAL_WORKSPACE": f"{dirs.plain}/wt",
                "CORRAL_OUTPUT": f"{dirs.plain}/out",
                "CORRAL_SOCKET": f"/tmp/corral-UID/{dirs.key}.sock",
            }
        )
        self.held[ref] = _Held(
            host,
            dirs,
            request.corral_env.get("CORRAL_AGENT_TOKEN", ""),
            request.socket,
            request.output_dir,
        )
        return Placement(
            ref=ref,
            runtime=self.name,
            branch=f"corral/{ref.run_id}/{ref.agent}/{ref.attempt}",
            host_workspace=Path(f"{dirs.plain}/wt"),
            output_dir=request.output_dir,
            log_path=request.log_path,
            workspace=f"{dirs.plain}/wt",
            agent_output_dir=f"{dirs.plain}/out",
            agent_socket=env["CORRAL_SOCKET"],
            env=env,
            host=host,
        )

    async def prepare(self, request: AttemptRequest, placement: Placement) -> None:
        held = self.held.get(request.ref)
        if held is None:
            raise PlacementFailed(f"{request.ref.label} was not placed by the ssh runtime")
        host = self.pool.hosts[held.host]
        if not held.slot:
            await self.pool.slot(held.host).acquire()
            held.slot = True
        try:
            await host.connection()
            lib = await self._install_lib(host)
            await self._ship(host)
            async with self._repo_lock(host.name):
                socket = await self._worktree(host, held, placement.branch)
            if request.copy_files:
                await self._copy_files(host, held, request.copy_files)
            await self._forward(host, held, socket)
        except (RemoteError, ShipError, OSError) as exc:
            raise PlacementFailed(f"on host {held.host!r}: {exc}") from None
        del lib

    async def _install_lib(self, host: HostConnection) -> str:
        """corral's agent side on the host (core/remote/agent_lib.py); its directory there.
        Once per host per engine: the attempts arriving meanwhile wait for the first."""
        async with self._ship_locks.setdefault(f"lib:{host.name}", asyncio.Lock()):
            return await self._install_lib_once(host)

    async def _install_lib_once(self, host: HostConnection) -> str:
        if self._lib is None:
            self._lib = await asyncio.to_thread(agent_lib.build)
        lib = f"{host.spec.workdir}/lib/{self._lib.digest}"
        if host.name in self._lib_on:
            return lib
        where = scripts.dir_expr(lib)
        have = await host.sh(f"[ -x {where}/bin/corral ] && echo yes || true")
        if have.text().strip() != "yes":
            put = await host.sh(
                f'set -e\numask 022\nD={where}\nmkdir -p "$D.new.$$"\ntar -x -C "$D.new.$$" -f -\n'
                'mv "$D.new.$$" "$D" 2>/dev/null || rm -rf "$D.new.$$"\n',
                stdin=self._lib.tar,
            )
            if put.status != 0:
                raise RemoteError(f"installing corral's agent commands: {put.problem()}")
        self._lib_on.add(host.name)
        return lib

    def _repo_lock(self, host: str) -> asyncio.Lock:
        """One worktree change at a time in a host's cached repository: git's `worktree add`
        picks its record's name and `worktree prune` removes records in progress, so two at
        once race (a few tens of milliseconds each on the runner)."""
        return self._ship_locks.setdefault(f"repo:{host}", asyncio.Lock())

    async def _ship(self, host: HostConnection) -> None:
        lock = self._ship_locks.setdefault(host.name, asyncio.Lock())
        async with lock:
            if host.name in self._has_snapshot:
                return
            shipped = await ship_snapshot(
                host, self.setup.repo_top, self.setup.snapshot, self._repo(host.name)
            )
            if shipped.bytes:
                self.shipped.append((host.name, shipped.bytes))
            self._has_snapshot.add(host.name)

    async def _worktree(self, host: HostConnection, held: _Held, branch: str) -> str:
        """The attempt's directory and worktree on the host; its socket's path there."""
        made = await host.sh(
            f"{scripts.prepare_dirs_script(held.dirs)}R={self._repo(host.name)}\n"
            f"{scripts.REPO_LOCK}"
            f'{REMOTE_GIT} -C "$R" worktree prune\n'
            f'{REMOTE_GIT} -C "$R" branch -q -D {shlex.quote(branch)} 2>/dev/null || true\n'
            f'{REMOTE_GIT} -C "$R" worktree add -q -b {shlex.quote(branch)} "$A/wt" {self.setup.snapshot}\n'
            f"{scripts.socket_path_script(held.dirs)}"
        )
        path = made.text().strip()
        if made.status != 0 or not path.startswith("/"):
            raise RemoteError(f"the worktree: {made.problem()}")
        return path

    async def _copy_files(self, host: HostConnection, held: _Held, names: tuple[str, ...]) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in names:
                path = self.setup.repo_top / name
                if path.exists():
                    tar.add(path, arcname=name)
        put = await host.sh(f"tar -x -C {held.dirs.base}/wt -f -", stdin=buffer.getvalue())
        if put.status != 0:
            raise RemoteError(f"copying {list(names)}: {put.problem()}")

    async def _forward(self, host: HostConnection, held: _Held, path: str | None = None) -> None:
        """The attempt's control socket on the host, relayed to the engine's (stamped)."""
        if held.listener is not None:
            held.listener.close()
            held.listener = None
        if path is None:
            path = (await host.sh(scripts.socket_path_script(held.dirs))).text().strip()
        if not path.startswith("/"):
            raise RemoteError("the control socket's directory could not be made")
        token, engine = held.token, held.engine_socket

        def handler_factory() -> Callable[[Any, Any], Any]:
            async def handle(reader: Any, writer: Any) -> None:
                await relay(reader, writer, engine, token)

            return handle

        conn = await host.connection()
        try:
            held.listener = await conn.start_unix_server(handler_factory, path)
        except asyncssh.Error as exc:
            raise RemoteError(
                f"forwarding the control socket to {path}: {exc} (the host's sshd needs "
                "AllowStreamLocalForwarding yes)"
            ) from None

    # -- commands ---------------------------------------------------------------------------

    async def start(
        self,
        placement: Placement,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> Execution:
        if placement.runtime != self.name:  # `place_command`'s: the verify, on this host
            return await self.local.start(placement, argv, interactive=interactive, tty=tty)
        if tty is not None:
            raise StartFailed("a terminal is not carried to remote hosts; remove tty")
        held = self.held.get(placement.ref)
        if held is None:
            raise StartFailed(f"{placement.ref.label} was not prepared by the ssh runtime")
        host = self.pool.hosts[held.host]
        index = held.next_index
        held.next_index += 1
        env = {
            key: value
            for key, value in placement.env.items()
            if key not in {"CORRAL_WORKSPACE", "CORRAL_OUTPUT", "CORRAL_SOCKET"}
        }
        lib = f"{host.spec.workdir}/lib/{self._lib.digest}" if self._lib else None
        try:
            await self._send_overlay(host, held, placement.output_dir)
            started = await host.sh(scripts.start_script(held.dirs, index, argv, env, lib))
        except (RemoteError, OSError) as exc:
            raise StartFailed(f"on host {held.host!r}: {exc}") from None
        words = started.text().split()
        if started.status != 0 or len(words) != 3 or not words[0].isdigit():
            raise StartFailed(f"on host {held.host!r}: {started.problem() or 'no pid'}")
        identity = SshIdentity(
            runtime=self.name,
            host=held.host,
            remote_pid=int(words[0]),
            boot_id=words[1],
            remote_start=words[2],
            index=index,
        )
        execution = SshExecution(host, held.dirs, identity, placement.log_path)
        execution.begin()
        held.executions.append(execution)
        return execution

    async def _send_overlay(self, host: HostConnection, held: _Held, output_dir: Path) -> None:
        """A preset agent's overlay files (written here into `out/overlay/` before it starts,
        core/presets/attempt.py) into its CORRAL_OUTPUT on the host, where its CLI reads them."""
        from corral.core.presets.attempt import OVERLAY_DIR

        overlay = output_dir / OVERLAY_DIR
        if not await asyncio.to_thread(overlay.is_dir):
            return
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(overlay, arcname=OVERLAY_DIR)
        put = await host.sh(
            f"umask 077; tar -x -C {held.dirs.base}/out -f -", stdin=buffer.getvalue()
        )
        if put.status != 0:
            raise RemoteError(f"sending the overlay files: {put.problem()}")

    def place_command(
        self, ref: AttemptRef, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        """The plan's `verify` runs on the engine's host, as `local` runs it."""
        return self.local.place_command(ref, directory, log_path, env)

    async def reattach(self, ref: AttemptRef, identity: Identity) -> Execution | None:
        """Not yet: after an engine crash a remote attempt is stopped (by `stop_attempt`'s
        sweep of every host) and run again."""
        return None

    async def stop_attempt(
        self, ref: AttemptRef, execution: Execution | None, grace: float
    ) -> Stopped:
        held = self.held.get(ref)
        if held is None and not isinstance(execution, SshExecution):
            local = await self.local.stop_attempt(ref, execution, grace)
            if ref.agent == "integration":
                return local
            return await self._sweep(ref, grace, local)
        if held is None:
            return Stopped()
        host = self.pool.hosts[held.host]
        if held.next_index == 0 and not host.health.up:
            return Stopped()  # never started a command there (its prepare failed): nothing runs
        stopped = await _stop_on(host, held.dirs, grace)
        if stopped is None:
            held.stop_deferred = True
            self.deferred[held.host][ref] = held
            return Stopped(
                details=[
                    f"host {held.host!r} is unreachable: its processes are stopped when it is "
                    "back; its late results are refused"
                ],
                deferred=True,
            )
        await self._bring_output(host, held)
        return stopped

    async def _sweep(self, ref: AttemptRef, grace: float, found: Stopped) -> Stopped:
        """An attempt this engine did not place (recovery after a crash): every reachable host."""
        total = found
        for name, host in self.pool.hosts.items():
            stopped = await _stop_on(host, self._dirs(name, ref), grace)
            if stopped is not None:
                total = Stopped(
                    total.stopped + stopped.stopped, total.forced + stopped.forced, total.details
                )
        return total

    async def _bring_output(self, host: HostConnection, held: _Held) -> None:
        """CORRAL_OUTPUT (the findings) back into the attempt's output directory, size-limited."""
        if held.output_copied:
            return
        held.output_copied = True
        out = f"{held.dirs.base}/out"
        with tempfile.TemporaryDirectory(prefix="corral-out-") as scratch:
            archive = Path(scratch) / "out.tar"
            made = await host.sh(
                f"[ -d {out} ] || exit 0\nsize=$(du -sk {out} | cut -f1)\n"
                f'[ "$size" -le {OUTPUT_LIMIT >> 10} ] || {{ echo "$size KB is over the limit" >&2; exit 5; }}\n'
                f"tar -c -C {out} -f - .\n",
                stdout=archive,
                stdin=b"",
            )
            if made.status != 0 or archive.stat().st_size == 0:
                return
            await asyncio.to_thread(_untar, archive, held.output_dir)

    async def collect(self, placement: Placement) -> None:
        held = self.held.get(placement.ref)
        if held is None:
            raise CollectFailed(f"{placement.ref.label} was not placed by the ssh runtime")
        host = self.pool.hosts[held.host]
        ref = placement.ref
        worktree = f"{held.dirs.base}/wt"
        message = f"corral: uncommitted work of agent {ref.agent}, attempt {ref.attempt}"
        try:
            left = await host.sh(
                f"cd {worktree} || exit 9\n"
                f'[ "$({REMOTE_GIT} symbolic-ref -q HEAD)" = {shlex.quote("refs/heads/" + placement.branch)} ] '
                '|| { echo "the worktree has another branch checked out than its own" >&2; exit 8; }\n'
                f'if [ -n "$({REMOTE_GIT} status --porcelain)" ]; then {REMOTE_GIT} add -A && '
                f"{REMOTE_GIT} -c user.name=corral -c user.email=corral@localhost "
                f"commit -q --no-verify -m {shlex.quote(message)}; fi\n"
            )
            if left.status != 0:
                raise CollectFailed(f"on host {held.host!r}: {left.problem()}")
            await fetch_branch(
                host,
                self.setup.repo_top,
                self._repo(held.host),
                worktree,
                placement.branch,
                self.setup.snapshot,
            )
        except (RemoteError, ShipError) as exc:
            raise CollectFailed(f"on host {held.host!r}: {exc}") from None

    async def release(self, placement: Placement) -> None:
        if placement.runtime != self.name:
            await self.local.release(placement)
            return
        held = self.held.get(placement.ref)
        if held is None:
            return
        for execution in held.executions:
            execution.cancel()
        if held.stop_deferred:
            return  # kept for when its host is back (`_when_back`)
        self.held.pop(placement.ref, None)
        await self._free(held, placement.branch)

    async def _free(self, held: _Held, branch: str) -> None:
        if held.listener is not None:
            held.listener.close()
            held.listener = None
        self.pool.give(held.host)
        if held.slot:
            held.slot = False
            self.pool.slot(held.host).release()
        host = self.pool.hosts[held.host]
        with contextlib.suppress(HostUnreachable, RemoteError):
            async with self._repo_lock(held.host):
                await host.sh(scripts.release_script(held.dirs, self._repo(held.host), branch))

    # -- a host back after a partition ------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _when_down(self, name: str) -> Callable[[], None]:
        """The health check of a host that dropped: reconnect in the background, at the
        connection's capped backoff, so the host returns to the pool when it is back."""

        async def revive() -> None:
            try:
                await self.pool.hosts[name].wait_up(float("inf"))
            finally:
                self._reviving.discard(name)

        def hook() -> None:
            if name in self._reviving:
                return
            with contextlib.suppress(RuntimeError):  # no loop: the engine is closing
                self._spawn(revive())
                self._reviving.add(name)

        return hook

    def _when_back(self, name: str) -> Callable[[], None]:
        def hook() -> None:
            if self.deferred.get(name):
                self._spawn(self._finish_deferred(name))

        return hook

    async def _finish_deferred(self, name: str) -> None:
        """The attempts that were running when the host dropped off: forward their sockets
        again (what they say now is refused by token, and recorded), stop them, confirmed,
        record the commits they made late as refused, and free their places."""
        host = self.pool.hosts[name]
        grace = 2.0
        for ref, held in list(self.deferred[name].items()):
            try:
                await self._forward(host, held)
                stopped = await _stop_on(host, held.dirs, grace)
                if stopped is None:
                    return  # down again: the next connection finishes it
                late = await self._late_commit(host, held, ref)
            except (RemoteError, TerminateError):
                return
            if late is not None:
                self._report(
                    LateResultRefused(
                        agent=ref.agent,
                        attempt=ref.attempt,
                        host=name,
                        what="commit",
                        detail=f"{late} on {held.dirs.plain}/wt, after the attempt was lost; not fetched",
                    )
                )
            del self.deferred[name][ref]
            self.held.pop(ref, None)
            held.stop_deferred = False
            await self._free(held, f"corral/{ref.run_id}/{ref.agent}/{ref.attempt}")

    async def _late_commit(self, host: HostConnection, held: _Held, ref: AttemptRef) -> str | None:
        branch = f"refs/heads/corral/{ref.run_id}/{ref.agent}/{ref.attempt}"
        found = await host.sh(
            f"{REMOTE_GIT} -C {held.dirs.base}/wt rev-parse -q --verify {shlex.quote(branch)} || true"
        )
        tip = found.text().strip()
        return tip if tip and tip != self.setup.snapshot else None

    def _report(self, event: LateResultRefused) -> None:
        if self.setup.report is not None:
            self.setup.report(event)

    def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        self.local.close()
        self.pool.close()


def _untar(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
