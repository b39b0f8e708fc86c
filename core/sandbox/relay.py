"""Inside a sandbox with `network = "allow"`: a loopback port that leads to corral's proxy.

The sandbox has its own network namespace with nothing in it but loopback, so no connection can
leave it directly; the only way out is the proxy's Unix socket, bind-mounted in. Clients that
honour `HTTPS_PROXY`/`HTTP_PROXY` expect a TCP proxy, so this relay listens on
`127.0.0.1:PORT`, passes each connection's bytes to the Unix socket unchanged, starts the
agent's command once it listens, and exits with the command's status (bubblewrap then ends the
namespace and whatever is left in it).

Run as a script by path (`python3 -I relay.py PORT SOCKET -- COMMAND...`), standard library
only: inside a container image corral's package may be all there is of corral.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading

CHUNK = 65536


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until end of file, then pass the end on (half-close) so the other way can finish."""
    try:
        while data := source.recv(CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _serve(client: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _accept(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve, args=(client, path), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: relay.py PORT SOCKET -- COMMAND...", file=sys.stderr)
        return 125
    port, path, command = int(argv[0]), argv[1], argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
    except OSError as error:
        print(f"corral sandbox: cannot listen on 127.0.0.1:{port}: {error}", file=sys.stderr)
        return 125
    threading.Thread(target=_accept, args=(listener, path), daemon=True).start()
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"corral sandbox: cannot start {command[0]}: {error}", file=sys.stderr)
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: child.send_signal(number))
    status = child.wait()
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
