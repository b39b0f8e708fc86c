"""Keys typed into an attached tty agent: Textual's key events as the bytes a terminal sends, and
the two requests that carry them (`input` with `raw`, and `resize`) to the run's engine, which
writes them to the agent's PTY and records each input with who typed it."""

from __future__ import annotations

from corral.core.log.state_models import AgentState
from corral.core.operator import actions
from corral.core.operator.identity import Operator
from corral.core.runs.rundir import RunDir

DETACH_KEY = "ctrl+right_square_bracket"
"""ctrl+] leaves the attached view (telnet's and docker's escape); it is never sent."""
DETACH_LABEL = "ctrl+]"

NAMED = {
    "enter": "\r",
    "tab": "\t",
    "shift+tab": "\x1b[Z",
    "backspace": "\x7f",
    "ctrl+h": "\x08",
    "escape": "\x1b",
    "space": " ",
    "up": "\x1b[A",
    "down": "\x1b[B",
    "right": "\x1b[C",
    "left": "\x1b[D",
    "home": "\x1b[H",
    "end": "\x1b[F",
    "insert": "\x1b[2~",
    "delete": "\x1b[3~",
    "pageup": "\x1b[5~",
    "pagedown": "\x1b[6~",
    "f1": "\x1bOP",
    "f2": "\x1bOQ",
    "f3": "\x1bOR",
    "f4": "\x1bOS",
    "f5": "\x1b[15~",
    "f6": "\x1b[17~",
    "f7": "\x1b[18~",
    "f8": "\x1b[19~",
    "f9": "\x1b[20~",
    "f10": "\x1b[21~",
    "f11": "\x1b[23~",
    "f12": "\x1b[24~",
    "ctrl+space": "\x00",
    "ctrl+@": "\x00",
    "ctrl+left_square_bracket": "\x1b",
    "ctrl+backslash": "\x1c",
    "ctrl+circumflex_accent": "\x1e",
    "ctrl+underscore": "\x1f",
}


CURSOR_KEYS = frozenset({"up", "down", "right", "left", "home", "end"})
"""Keys sent as `ESC O x` rather than `ESC [ x` while the program asked for application cursor
keys (DECCKM, `ESC [ ? 1 h`: vim, less and readline do)."""


def key_bytes(key: str, character: str | None, *, application_cursor: bool = False) -> str | None:
    """What a terminal sends for this key; None for a key it sends nothing for."""
    if key in NAMED:
        sent = NAMED[key]
        return "\x1bO" + sent[2:] if application_cursor and key in CURSOR_KEYS else sent
    if key.startswith("ctrl+") and len(key) == 6 and key[5].isalpha():
        return chr(ord(key[5].lower()) - ord("a") + 1)
    if key.startswith("alt+"):
        rest = key_bytes(key[4:], character[-1:] if character else None)
        return "\x1b" + rest if rest else None
    if character and character.isprintable():
        return character
    return None


def pasted(text: str, *, bracketed: bool) -> str:
    """Pasted text as a terminal sends it: marked when the program asked (mode 2004), so an
    editor or a shell takes it as text rather than as typed commands."""
    return f"\x1b[200~{text}\x1b[201~" if bracketed else text


def send_keys(
    rundir: RunDir, agent: str, keys: str, by: Operator, client: str | None = None
) -> None:
    """Raw bytes to a tty agent's terminal, recorded by the engine with who typed them (the
    operator API: T1 refuses a caller inside an agent; one typist at a time, by `client`)."""
    actions.send_keys(rundir, agent, keys, by, client)


def resize(rundir: RunDir, agent: str, columns: int, rows: int, by: Operator) -> None:
    """The attached view's size, for the agent's PTY (TIOCSWINSZ and SIGWINCH in the engine)."""
    actions.resize(rundir, agent, columns, rows, by)


def is_tty(agent: AgentState | None) -> bool:
    """The agent runs on a PTY (`tty = true`)."""
    return agent is not None and agent.tty
