"""Known secret values kept out of what corral stores: output logs, agent output, events.

docs/reliability.md U3: secrets never enter events, logs or reports, and known secret
values are redacted from captured output. "Known" means: the values of the agent's environment
variables whose names say they are secrets (`ANTHROPIC_API_KEY`, `GITHUB_TOKEN`,
`AWS_SECRET_ACCESS_KEY`, `PGPASSWORD`, ...) or whose value is a URL with a password in it
(`postgres://app:pw@db/app`), every variable the plan takes `from_env`, and the
attempt's own control-socket token. Each occurrence becomes `[redacted NAME]`.

Agents write `output.log` themselves (so they outlive an engine crash), so the log is redacted
once the attempt's processes are all gone, not while it is being written: a live tail shows what
the agent printed, to the user who gave it the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from corral.core.atomic import replacing

SECRET_WORDS = frozenset(
    {"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "CREDENTIAL", "CREDENTIALS"}
)
"""A variable is a secret when one of the `_`-separated words of its name is one of these."""
SECRET_SUFFIXES = ("KEY", "TOKEN", "SECRET", "PASSWORD")
"""... or when its name ends with one of these (`PGPASSWORD`, `NPMTOKEN`)."""
MIN_LENGTH = 8
"""Shorter values (`1`, `true`, a port) would redact ordinary text, so they are left alone."""
CHUNK = 1 << 20


CREDENTIAL_URL = re.compile(r"://[^/\s:@]*:[^/\s@]+@")
"""`scheme://user:password@host`: a value that carries its own password, whatever its name."""


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return bool(SECRET_WORDS.intersection(upper.split("_"))) or upper.endswith(SECRET_SUFFIXES)


def is_secret(name: str, value: str) -> bool:
    """Whether variable `name` holds a secret: by its name, or by a password in its URL value."""
    return is_secret_name(name) or CREDENTIAL_URL.search(value) is not None


class Redactor:
    """Replaces known secret values, longest first (so a value inside another never splits it)."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        """`secrets` maps each name to its value; values shorter than MIN_LENGTH are ignored."""
        by_value: dict[bytes, bytes] = {}
        for name, value in sorted(secrets.items()):
            if len(value) >= MIN_LENGTH:
                by_value.setdefault(value.encode(), f"[redacted {name}]".encode())
        self._replacements = by_value
        self._pattern = (
            re.compile(b"|".join(re.escape(v) for v in sorted(by_value, key=len, reverse=True)))
            if by_value
            else None
        )
        self.longest = max((len(v) for v in by_value), default=0)

    @classmethod
    def for_environment(cls, env: Mapping[str, str], also: Iterable[str] = ()) -> Redactor:
        """The secrets of an agent's environment: secret-looking names plus the `also` names."""
        wanted = set(also)
        return cls({k: v for k, v in env.items() if k in wanted or is_secret(k, v)})

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact_bytes(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        return self._pattern.sub(lambda match: self._replacements[match.group(0)], data)

    def redact(self, text: str) -> str:
        return self.redact_bytes(text.encode("utf-8", "surrogateescape")).decode(
            "utf-8", "surrogateescape"
        )

    def redact_file(self, path: Path) -> bool:
        """Rewrite `path` without its secrets (atomically); False when none occurred.

        Reads in chunks, keeping the last `longest - 1` bytes for the next one, so a value cut
        by a chunk boundary is still found. Never follows a symlink: the agent made the file.
        """
        if self._pattern is None or path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as source:
            if not self._contains(source):
                return False
            source.seek(0)
            with replacing(path, os.fstat(source.fileno()).st_mode & 0o777) as target:
                self._copy_redacted(source, target)
        return True

    def _contains(self, source: BinaryIO) -> bool:
        assert self._pattern is not None
        carry = b""
        while chunk := source.read(CHUNK):
            window = carry + chunk
            if self._pattern.search(window):
                return True
            carry = window[-(self.longest - 1) :] if self.longest > 1 else b""
        return False

    def _copy_redacted(self, source: BinaryIO, target: BinaryIO) -> None:
        assert self._pattern is not None
        pending = b""
        while chunk := source.read(CHUNK):
            window = pending + chunk
            # everything before `safe` cannot be the start of a value cut by the boundary,
            # unless a match that starts there ends inside the window (then it is whole)
            safe = max(0, len(window) - (self.longest - 1))
            out = bytearray()
            position = 0
            for match in self._pattern.finditer(window):
                if match.start() >= safe:
                    break
                out += window[position : match.start()]
                out += self._replacements[match.group(0)]
                position = match.end()
            cut = max(position, safe)
            out += window[position:cut]
            target.write(bytes(out))
            pending = window[cut:]
        target.write(self.redact_bytes(pending))
