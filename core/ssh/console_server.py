"""The SSH console server: public-key authentication against corral's keys file (keys.py),
then, for each session that asks for a terminal, one `corral tui` on a pseudo-terminal
(console_child.py) acting as the key's holder with the key's roles.

Nothing else is served: no shell, no command, no subsystem (each refused with a line and exit
status 1), no agent, X11 or port forwarding, no password or keyboard-interactive login. The
console's identity is passed to it on its command line, built here from the key that logged in;
its environment is built from scratch, never the server's. A dropped connection stops that
console and nothing else: the run's engine is another process that never hears of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path

import asyncssh

from corral.core.operator.identity import roles_text
from corral.core.ssh import hostkey, keys
from corral.core.ssh.console_child import ConsoleChild
from corral.core.ssh.options import ServeOptions
from corral.core.trust.inert import one_line

CONSOLE_ONLY = "this server gives corral's console only, no commands: ssh -t HOST"
TERM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
DEFAULT_TERM = "xterm-256color"

Say = Callable[[str], None]


def console_env(term: str) -> dict[str, str]:
    """The console's whole environment: nothing of the server's SSH_* (or any other) variables
    beyond what a terminal program needs and how this Python finds corral."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TERM": term if TERM_NAME.fullmatch(term) else DEFAULT_TERM,
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def console_argv(options: ServeOptions, entry: keys.AuthorizedKey) -> list[str]:
    """`corral tui [RUN]` as the key's holder, with the key's roles (core/cli/main.py)."""
    argv = [sys.executable, "-m", "corral.core.cli", "--repo", str(options.repo), "tui"]
    if options.run is not None:
        argv.append(options.run)
    argv += ["--as", entry.name, "--fingerprint", entry.fingerprint]
    argv += ["--roles", roles_text(entry.roles), "--keys-file", str(options.keys_file)]
    return argv


class ConsoleSession(asyncssh.SSHServerSession[bytes]):
    """One session: a console on a pty when a terminal and a shell are asked for, else a
    refusal."""

    def __init__(self, options: ServeOptions, entry: keys.AuthorizedKey, who: str, say: Say):
        self.options = options
        self.entry = entry
        self.who = who
        self.say = say
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.term: str | None = None
        self.size = (80, 24)
        self.refusal = ""
        self.child: ConsoleChild | None = None
        self.gone = False
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: object
    ) -> bool:
        self.term = term_type or DEFAULT_TERM
        self.size = (term_size[0] or 80, term_size[1] or 24)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.refusal = CONSOLE_ONLY
        return True  # accepted only to say why, then ended with status 1

    def subsystem_requested(self, subsystem: str) -> bool:
        self.refusal = f"no subsystem ({one_line(subsystem, 40)}): {CONSOLE_ONLY}"
        return True

    def session_started(self) -> None:
        assert self.chan is not None
        if not self.refusal and self.term is None:
            self.refusal = "the console needs a terminal: ssh -t HOST"
        if self.refusal:
            self.say(f"{self.who}: refused: {self.refusal}")
            self.chan.write_stderr(f"corral: {self.refusal}\r\n".encode())
            self.chan.exit(1)
            return
        self._spawn(self._start())

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self) -> None:
        assert self.chan is not None
        assert self.term is not None
        cols, rows = self.size
        try:
            child = await ConsoleChild.start(
                console_argv(self.options, self.entry),
                env=console_env(self.term),
                cwd=self.options.repo,
                cols=cols,
                rows=rows,
                on_output=self._output,
                on_exit=self._exited,
            )
        except OSError as exc:
            self.say(f"{self.who}: the console did not start: {exc}")
            self.chan.write_stderr(f"corral: the console did not start: {exc}\r\n".encode())
            self.chan.exit(1)
            return
        self.child = child
        self.say(f"{self.who}: console pid {child.pid}")
        if self.gone:  # the client left while the console started
            await self._stop()

    def _output(self, data: bytes) -> None:
        if self.chan is not None and not self.gone:
            self.chan.write(data)

    def _exited(self, status: int) -> None:
        if not self.gone and self.chan is not None:
            self.say(f"{self.who}: console exited ({status})")
            self.chan.exit(status if status >= 0 else 1)  # < 0: ended by a signal

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self.child is not None and not self.child.write(data) and self.chan is not None:
            self.chan.pause_reading()  # the console reads its keys slower than they come
            self.child.on_drained = self._drained

    def _drained(self) -> None:
        if self.chan is not None and not self.gone:
            self.chan.resume_reading()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = (width or self.size[0], height or self.size[1])
        if self.child is not None:
            self.child.resize(*self.size)

    def pause_writing(self) -> None:
        if self.child is not None:
            self.child.pause_output()

    def resume_writing(self) -> None:
        if self.child is not None:
            self.child.resume_output()

    def eof_received(self) -> bool:
        return False  # no more keys can come: the channel closes, which stops the console

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        if self.child is not None:
            self._spawn(self._stop())

    async def _stop(self) -> None:
        if self.child is not None:
            pid = self.child.pid
            how = await self.child.stop()
            self.say(f"{self.who}: console pid {pid} stopped ({how})")


class KeyServer(asyncssh.SSHServer):
    """One connection: a key from corral's keys file or nothing, then console sessions."""

    def __init__(self, options: ServeOptions, say: Say) -> None:
        self.options = options
        self.say = say
        self.peer = "?"
        self.keys: keys.AuthorizedKeys | None = None
        self.entry: keys.AuthorizedKey | None = None
        """The key last validated: the one that logged in once authentication succeeded
        (asyncssh asks again for the key of every signed attempt)."""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        host, port = (conn.get_extra_info("peername") or ("?", 0))[:2]
        self.peer = f"{host}:{port}"

    def connection_lost(self, exc: Exception | None) -> None:
        who = self.entry.name if self.entry is not None else "unauthenticated"
        self.say(f"{self.peer} ({who}): disconnected" + (f": {exc}" if exc else ""))

    def begin_auth(self, username: str) -> bool:
        try:  # read again for each connection: a key taken out of the file is out at once
            self.keys = keys.load(self.options.keys_file)
        except keys.KeysFileError as exc:
            self.say(f"{self.peer}: refusing every key: {exc}")
            self.keys = None
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.entry = self.keys.find(key) if self.keys is not None else None
        if self.entry is None:
            self.say(f"{self.peer}: refused key {key.get_fingerprint('sha256')} (not listed)")
        return self.entry is not None

    def auth_completed(self) -> None:
        if self.entry is not None:
            self.say(
                f"{self.peer}: ssh key {self.entry.name} ({self.entry.fingerprint}) as "
                f"{roles_text(self.entry.roles)}"
            )

    def session_requested(self) -> ConsoleSession | bool:
        if self.entry is None:
            return False
        who = f"{self.peer} ({self.entry.name})"
        return ConsoleSession(self.options, self.entry, who, self.say)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        shown = one_line(dest_host, 80)  # the client's words, printed on the server's terminal
        self.say(f"{self.peer}: refused a port forward to {shown}:{dest_port}")
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        shown = one_line(listen_host, 80)
        self.say(f"{self.peer}: refused a remote port forward on {shown}:{listen_port}")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


async def start(options: ServeOptions, say: Say) -> tuple[asyncssh.SSHAcceptor, str]:
    """Listen with the hardening of docs/reliability.md H1; the acceptor and the host key's
    fingerprint. The keys file is checked first: a bad one or none stops the start."""
    keys.load(options.keys_file)
    host_key = hostkey.load_or_create(options.host_key_file)
    acceptor = await asyncssh.create_server(
        lambda: KeyServer(options, say),
        options.host,
        options.port,
        server_host_keys=[host_key],
        server_version="corral",
        public_key_auth=True,
        password_auth=False,
        kbdint_auth=False,
        host_based_auth=False,
        gss_host=None,
        gss_kex=False,
        gss_auth=False,
        agent_forwarding=False,
        x11_forwarding=False,
        allow_pty=True,
        line_editor=False,
        allow_scp=False,
        encoding=None,
        login_timeout=options.login_timeout,
        keepalive_interval=options.keepalive_interval,
        keepalive_count_max=options.keepalive_count_max,
    )
    return acceptor, hostkey.fingerprint(host_key)


def listening_port(acceptor: asyncssh.SSHAcceptor) -> int:
    """The port bound (the one asked for, or the free one the system chose for port 0)."""
    return int(acceptor.sockets[0].getsockname()[1])


def serve(options: ServeOptions, say: Say, on_listening: Callable[[str, int, str], None]) -> None:
    """Run the server until interrupted; each console it started is stopped on the way out."""

    async def main() -> None:
        acceptor, fingerprint = await start(options, say)
        on_listening(options.host, listening_port(acceptor), fingerprint)
        try:
            await acceptor.wait_closed()
        finally:
            acceptor.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def default_paths(common_dir: Path) -> tuple[Path, Path]:
    """The keys file and the host key under `<git-common-dir>/corral/ssh`."""
    from corral.core.ssh.options import ssh_dir

    base = ssh_dir(common_dir)
    return base / "authorized_keys", base / "host_ed25519_key"
