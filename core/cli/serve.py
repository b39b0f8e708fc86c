"""`corral serve --web`: the same console in a browser, through textual-serve; `corral serve
--ssh`: the console over SSH (core/ssh/), one per key holder, with the key's roles.

Each browser tab that connects gets its own `corral tui` process (textual-serve starts one per
websocket), read-only unless `--operator`: a phone or a colleague watches; only who started the
server with `--operator` lets the page kill, retry and decide, as the serving user. The page has
no login of its own and speaks plain HTTP, so the server binds loopback only unless asked with
`--allow-remote` (reach it from elsewhere through an SSH tunnel instead).

textual-serve is imported only when the server starts: no other command pays for aiohttp;
asyncssh likewise, only by `--ssh`.
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # not typing's: the parser imports this module on every start (main.py)
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve", help="serve the console to a browser (--web) or over SSH (--ssh)"
    )
    serve.add_argument("run", nargs="?", help="open this run's dashboard (default: the runs list)")
    serve.add_argument(
        "--web", action="store_true", help="serve the console as a web page (textual-serve)"
    )
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}, loopback)"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to bind (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--public-url",
        help="the address browsers reach the server at, when not http://HOST:PORT (a proxy)",
    )
    serve.add_argument(
        "--operator",
        action="store_true",
        help="let the page kill, retry and decide as you (default: watch only)",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="bind an address other machines reach (the page has no login: anyone who reaches "
        "it sees the run, and acts on it with --operator)",
    )
    ssh = serve.add_argument_group("over SSH (--ssh)")
    ssh.add_argument(
        "--ssh",
        action="store_true",
        help="serve the console over SSH: public keys from corral's keys file, each with its roles",
    )
    ssh.add_argument(
        "--listen",
        default="127.0.0.1:2222",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:2222; port 0 picks a free one)",
    )
    ssh.add_argument(
        "--keys",
        type=_path,
        metavar="FILE",
        help="the authorized keys file, one `NAME ROLES KEYTYPE BASE64 [COMMENT]` a line "
        "(default <git-common-dir>/corral/ssh/authorized_keys)",
    )
    ssh.add_argument(
        "--add-key",
        nargs=3,
        metavar=("NAME", "ROLES", "PUBKEYFILE"),
        help="add a public key to the keys file (ROLES: viewer, operator, reviewer, "
        "comma-separated) and exit",
    )
    ssh.add_argument(
        "--login-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds a connection has to log in (default 10)",
    )


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address; a name is not resolved (it may point anywhere)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, *, allow_remote: bool) -> None:
    """Refuse what would expose the console by accident, naming the way to ask for it."""
    from corral.core.errors import InputError

    if not 1 <= port <= 65535:
        raise InputError(f"--port {port}: a port is 1 to 65535")
    if not allow_remote and not is_loopback(host):
        raise InputError(
            f"--host {host} is not a loopback address: the web console has no login and speaks "
            "plain HTTP, so anyone who reaches it would see the run (and act on it with "
            "--operator). Bind 127.0.0.1 and reach it through `ssh -L`, or say --allow-remote."
        )


def console_command(repo: Path, run: str | None, *, operator: bool) -> str:
    """The shell command textual-serve runs for each browser: this Python's `corral tui`."""
    import shlex

    words = [sys.executable, "-m", "corral.core.cli", "--repo", str(repo), "tui"]
    if run is not None:
        words.append(run)
    if not operator:
        words.append("--read-only")
    return shlex.join(words)


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def cmd_serve(args: argparse.Namespace, repo: Path) -> int:
    from corral.core.errors import CorralError, InputError

    if args.ssh and args.web:
        raise InputError("--ssh or --web, not both: start one server of each")
    if args.ssh or args.add_key:
        return _serve_ssh(args, repo)
    if not args.web:
        raise InputError(
            "say how to serve: `corral serve --web` (a browser on loopback) or "
            "`corral serve --ssh` (over SSH, public keys only)"
        )
    check_bind(args.host, args.port, allow_remote=args.allow_remote)
    if args.run is not None:
        from corral.core.runs.rundir import find_run, git_common_dir

        args.run = find_run(git_common_dir(repo), args.run).run_id
    try:
        from textual_serve.server import Server
    except ImportError as exc:  # an install without the dependency
        raise CorralError(
            f"the web console needs textual-serve ({exc}): pip install textual-serve"
        ) from exc
    host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    mode = "operator" if args.operator else "read-only"
    server = Server(
        console_command(repo, args.run, operator=args.operator),
        host=args.host,
        port=args.port,
        title=f"corral {args.run or repo.name} ({mode})",
        public_url=args.public_url or f"http://{host}:{args.port}",
    )
    print(f"corral: serving the console ({mode}) at {server.public_url}", flush=True)
    server.serve()
    return 0


def _serve_ssh(args: argparse.Namespace, repo: Path) -> int:
    """`corral serve --ssh`: check the keys file, make the host key once, print where and with
    which fingerprint it listens, then serve until interrupted. `--add-key` adds a key only."""
    from corral.core.errors import InputError
    from corral.core.runs.rundir import find_run, git_common_dir
    from corral.core.ssh import keys
    from corral.core.ssh.options import ServeOptions, parse_listen, ssh_dir

    common = git_common_dir(repo)
    keys_file = args.keys or ssh_dir(common) / "authorized_keys"
    if args.add_key:
        name, roles, public = args.add_key
        entry = keys.add_key(keys_file, name, roles, _path(public))
        print(f"corral: added ssh key {entry.name} ({entry.fingerprint}) to {keys_file}")
        return 0
    if args.login_timeout <= 0:
        raise InputError(f"--login-timeout {args.login_timeout}: give a number of seconds > 0")
    host, port = parse_listen(args.listen)
    run = find_run(common, args.run).run_id if args.run is not None else None
    options = ServeOptions(
        repo=repo.resolve(),
        run=run,
        host=host,
        port=port,
        keys_file=keys_file,
        host_key_file=ssh_dir(common) / "host_ed25519_key",
        login_timeout=args.login_timeout,
    )
    from corral.core.ssh.console_server import serve

    def listening(host: str, port: int, fingerprint: str) -> None:
        shown = f"[{host}]" if ":" in host else host
        count = len(keys.load(keys_file).keys)
        print(f"corral: serving the console over SSH at {shown}:{port}", flush=True)
        print(f"corral: host key {fingerprint} ({options.host_key_file}.pub)", flush=True)
        print(f"corral: {count} key(s) from {keys_file}", flush=True)

    def say(line: str) -> None:
        print(f"corral: {line}", file=sys.stderr, flush=True)

    serve(options, say, listening)
    return 0
