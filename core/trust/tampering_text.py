"""How a change to the shared repository reads to a person: what changed inside a watched file
(a few printable lines), one line per change, and one per tampering event.

Apart from core/trust/integrity.py, which records and checks (and re-exports these names for
its callers), so that what only shows tampering (the report, the event lines) need not load the
checking. Everything an agent may have written goes through `printable` first.
"""

from __future__ import annotations

from pathlib import Path

from corral.core.log import events as ev
from corral.core.log.state import TamperingState
from corral.core.trust.inert import visible

DETAIL_LINES = 12
DETAIL_WIDTH = 160
TEXT_LIMIT = 1 << 20
"""Bytes of a config or attributes file read to say what changed in it."""


def printable(text: str, limit: int = DETAIL_WIDTH) -> str:
    """`text` with every control spelled out (core/trust/inert.py's `visible`), at most `limit` chars."""
    out = visible(text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def change_kind(name: str) -> ev.RepoChangeKind:
    if name in ("config", "config.worktree"):
        return "config"
    if name == "info/attributes":
        return "attributes"
    return "hook"


def _text_lines(path: Path | None) -> list[tuple[str, str]]:
    """(section, line) for each non-blank line of a config-like file ('' when it has none)."""
    if path is None or not path.is_file() or path.is_symlink():
        return []
    try:
        with open(path, "rb") as file:
            text = file.read(TEXT_LIMIT).decode("utf-8", "replace")
    except OSError:
        return []
    section = ""
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("["):
            section = line.split("]", 1)[0] + "]"
        lines.append((section, line))
    return lines


def _is_file_stamp(found: str) -> bool:
    digest, _, mode = found.partition(" ")
    return len(digest) == 64 and mode.isdigit()


def change_detail(
    name: str, old: Path | None, new: Path | None, new_stamp: str | None
) -> list[str]:
    """What changed inside the file, in a few printable lines."""
    import difflib  # only when something changed

    if new_stamp is not None and not _is_file_stamp(new_stamp):
        return [printable(f"now {new_stamp}")]
    if change_kind(name) == "hook":
        if new is None:
            return ["removed"]
        head = _text_lines(new)[:1]
        first = head[0][1] if head else ""
        return [printable(f"{new.stat().st_size} bytes, first line: {first}")]
    before, after = _text_lines(old), _text_lines(new)
    lines = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag in ("delete", "replace"):
            lines += [_diff_line("-", *entry) for entry in before[a0:a1]]
        if tag in ("insert", "replace"):
            lines += [_diff_line("+", *entry) for entry in after[b0:b1]]
    if len(lines) > DETAIL_LINES:
        lines = [*lines[: DETAIL_LINES - 1], f"… and {len(lines) - DETAIL_LINES + 1} more lines"]
    return lines


def _diff_line(sign: str, section: str, line: str) -> str:
    where = f"{section} " if section and section != line else ""
    return printable(f"{sign} {where}{line}")


def _short(value: str | None) -> str:
    if value is None:
        return "-"
    return value[:12] if len(value) in (40, 64) and value.isalnum() else printable(value, 60)


def describe_change(change: ev.RepoChange) -> str:
    """One line for a person: what changed and what corral did about it."""
    name = printable(change.name, 120)
    if change.kind == "ref":
        if change.old is None:
            return f"{name} created at {_short(change.new)} (left as found)"
        if change.new is None:
            return f"{name} deleted (was {_short(change.old)}; left as found)"
        return f"{name} moved {_short(change.old)} → {_short(change.new)} (left as found)"
    verb = "planted" if change.old is None else "removed" if change.new is None else "changed"
    text = f".git/{name} {verb}"
    if not change.restored:
        return text + "; NOT restored"
    text += "; removed again" if change.old is None else "; restored"
    if change.kept:
        text += f" (the {verb} version is kept at {printable(change.kept, 200)})"
    return text


def describe_when(live: list[str], seen: str) -> str:
    if live:
        return f"while {', '.join(printable(name, 60) for name in live)} ran"
    if seen == "approve":
        return "after the run, found before approval"
    return "while no attempt was live"


def describe_tampering(tampering: TamperingState | ev.RepoTampered) -> str:
    """One line: who was live, then each change (the first few)."""
    parts = [describe_change(change) for change in tampering.changes[:4]]
    if len(tampering.changes) > 4:
        parts.append(f"{len(tampering.changes) - 4} more")
    if tampering.problem:
        parts.append(printable(tampering.problem, 300))
    return f"{describe_when(tampering.live, tampering.seen)}: " + "; ".join(parts)
