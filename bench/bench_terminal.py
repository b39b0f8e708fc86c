"""How fast the terminal view digests a tty agent's output (issue 15: `yes | head -c 50M`): pyte's
bytes per second for a flood of short lines and for coloured text, and how long the view takes
to show the end of a 50 MB log (it skips ahead past BEHIND unread bytes).

    PYTHONPATH=. python bench/bench_terminal.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from corral.tui import ops
from corral.tui.widgets.terminal import Terminal, skip_ahead


def rate(data: bytes) -> float:
    terminal = Terminal(120, 40)
    start = time.perf_counter()
    terminal.feed(data)
    return len(data) / (time.perf_counter() - start) / 1e6


def catch_up(size: int) -> float:
    """Seconds from a log of `size` bytes of `y\\n` to its last screen drawn in the emulator."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "output.log"
        log.write_bytes(b"y\n" * (size // 2))
        terminal = Terminal(120, 40)
        start = time.perf_counter()
        offset = inode = 0
        while True:
            skipped = skip_ahead(log, offset)
            if skipped is not None:
                offset = skipped
                terminal.reset()
            data, offset, inode = ops.read_more(log, offset, inode)
            if not data:
                break
            terminal.feed(data)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--megabytes", type=int, default=50, help="size of the flood's log")
    args = parser.parse_args()
    flood = b"y\n" * 500_000
    print(f"short lines (yes): {rate(flood):.2f} MB/s")
    coloured = (b"\x1b[31mred\x1b[0m text \x1b[1;44mbold\x1b[0m " * 10 + b"\r\n") * 5_000
    print(f"coloured text: {rate(coloured):.2f} MB/s")
    size = args.megabytes << 20
    print(f"{args.megabytes} MB of yes to its last screen: {catch_up(size):.2f} s")


if __name__ == "__main__":
    main()
