"""A private tmux server for tests that need a real terminal: the console in tmux, over SSH,
or suspended for an editor."""

from __future__ import annotations

import subprocess
import time


class Tmux:
    """One private tmux server (its own socket `-L NAME`), driving the window `window`."""

    def __init__(self, socket: str, window: str = "console", within: float = 20.0) -> None:
        self.socket = socket
        self.window = window
        self.within = within
        """How long `wait_for` and `wait_gone` wait unless told."""

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.window)

    def wait_for(self, *needles: str, within: float | None = None) -> str:
        """The screen once every needle is on it; fails with the screen at the deadline."""
        within = self.within if within is None else within
        deadline = time.monotonic() + within
        while True:
            shown = self.screen()
            if all(needle in shown for needle in needles):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{needles} not on screen after {within}s:\n{shown}")
            time.sleep(0.1)

    def wait_gone(self, needle: str, within: float | None = None) -> None:
        within = self.within if within is None else within
        deadline = time.monotonic() + within
        while needle in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} still on screen after {within}s")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.window, *keys)
        time.sleep(0.2)  # an escape followed at once by a key reads as alt+key, as on any terminal

    def sessions(self) -> str:
        """`tmux list-sessions` (empty once the server is gone)."""
        return subprocess.run(
            ["tmux", "-L", self.socket, "list-sessions"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def kill(self) -> None:
        """The server and everything in it."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
