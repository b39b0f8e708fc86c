"""corral's authorized keys file: who may open the console over SSH, and with which roles.

One key a line, `NAME ROLES KEYTYPE BASE64 [COMMENT]` (`alice viewer,reviewer ssh-ed25519
AAAA... alice@laptop`), `#` starts a comment line. NAME is what decisions record (with the key's
fingerprint); ROLES are core's (core/operator/identity.py). A bad line is an error naming its
number and the fix, and a file with no key is one too: the server never starts half-configured.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from corral.core.errors import InputError
from corral.core.operator.identity import Role, parse_roles, roles_text

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
FORM = "NAME ROLES KEYTYPE BASE64 [COMMENT]"
EXAMPLE = "alice viewer,reviewer ssh-ed25519 AAAAC3Nza... alice@laptop"


class KeysFileError(InputError):
    """The keys file is missing, empty or has a bad line; the message names the fix."""


@dataclass(frozen=True, kw_only=True)
class AuthorizedKey:
    name: str
    roles: frozenset[Role]
    key: asyncssh.SSHKey
    line: int

    @property
    def fingerprint(self) -> str:
        return self.key.get_fingerprint("sha256")


@dataclass(frozen=True)
class AuthorizedKeys:
    path: Path
    keys: tuple[AuthorizedKey, ...]

    def find(self, key: asyncssh.SSHKey) -> AuthorizedKey | None:
        """The entry for the key a client offers (compared as public key blobs)."""
        for entry in self.keys:
            if entry.key.public_data == key.public_data:
                return entry
        return None


def how_to_add(path: Path) -> str:
    return (
        f"add one with `corral serve --ssh --add-key NAME ROLES KEY.pub` or write a line "
        f"`{FORM}` in {path} (roles: viewer, operator, reviewer)"
    )


def load(path: Path) -> AuthorizedKeys:
    """Every key of the file, checked; KeysFileError for a missing file, a bad line or no key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeysFileError(f"no keys file at {path}: {how_to_add(path)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"cannot read the keys file {path}: {exc}") from None
    keys = parse(text, path)
    if not keys:
        raise KeysFileError(f"no keys in {path}: {how_to_add(path)}")
    return AuthorizedKeys(path, keys)


def parse(text: str, path: Path) -> tuple[AuthorizedKey, ...]:
    """The keys of `text` (the file at `path`, named in errors), duplicates refused."""
    found: list[AuthorizedKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = parse_line(line, number, path)
        for earlier in found:
            if earlier.name == entry.name:
                raise KeysFileError(
                    f"{path} line {number}: the name {entry.name} is already line "
                    f"{earlier.line}'s: give each key its own name (decisions record it)"
                )
            if earlier.key.public_data == entry.key.public_data:
                raise KeysFileError(
                    f"{path} line {number}: the same key as line {earlier.line} "
                    f"({earlier.name}): keep one line per key, with every role it holds"
                )
        found.append(entry)
    return tuple(found)


def parse_line(line: str, number: int, path: Path) -> AuthorizedKey:
    where = f"{path} line {number}"
    if "PRIVATE KEY" in line:
        raise KeysFileError(
            f"{where}: this is a private key: remove it at once and put the public key "
            "(the .pub file's line) instead"
        )
    fields = line.split(None, 4)
    if fields and (fields[0].startswith(("ssh-", "ecdsa-", "sk-"))):
        raise KeysFileError(
            f"{where}: the line starts with the key type: put a name and roles in front, "
            f"`{FORM}`, e.g. `{EXAMPLE}`"
        )
    if len(fields) < 4:
        raise KeysFileError(
            f"{where}: {len(fields)} field(s) where a key line has {FORM}, e.g. `{EXAMPLE}`"
        )
    name, roles_word, key_type, blob = fields[:4]
    if not NAME.fullmatch(name):
        raise KeysFileError(
            f"{where}: the name {name[:40]!r} is not a name: letters, digits and . _ @ -, "
            "at most 64, starting with a letter or digit"
        )
    try:
        roles = parse_roles(roles_word)
    except ValueError as exc:
        raise KeysFileError(f"{where}: {exc}") from None
    try:
        key = asyncssh.import_public_key(f"{key_type} {blob}")
    except (asyncssh.KeyImportError, ValueError) as exc:
        inside = _type_inside(blob)
        if inside and inside != key_type:
            raise KeysFileError(
                f"{where}: the key says it is {inside}, the line says {key_type}: paste the "
                ".pub file's line as it is"
            ) from None
        raise KeysFileError(
            f"{where}: not a public key ({exc}): after the name and roles, paste the key type "
            "and the base64 of the .pub file's line"
        ) from None
    return AuthorizedKey(name=name, roles=roles, key=key, line=number)


def _type_inside(blob: str) -> str:
    """The key type a public key blob starts with (an SSH string), '' if it is not one."""
    try:
        data = base64.b64decode(blob, validate=True)
    except ValueError:
        return ""
    size = int.from_bytes(data[:4], "big")
    if len(data) < 4 + size or not 0 < size <= 64:
        return ""
    return data[4 : 4 + size].decode("ascii", errors="replace")


def add_key(path: Path, name: str, roles_word: str, public_key_file: Path) -> AuthorizedKey:
    """Append a key to the file (made 0600 in a 0700 directory when new), checked as the
    server will read it: a bad name, roles or key, or a duplicate, changes nothing."""
    try:
        public = public_key_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"cannot read the public key {public_key_file}: {exc}") from None
    fields = public.split(None, 2)
    if len(fields) < 2:
        raise KeysFileError(
            f"{public_key_file} is not an OpenSSH public key (`KEYTYPE BASE64 [COMMENT]`): "
            "give the .pub file ssh-keygen wrote"
        )
    comment = fields[2] if len(fields) > 2 else ""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    entry_line = " ".join(
        part for part in (name, roles_word, fields[0], fields[1], comment) if part
    )
    number = len(existing.splitlines()) + 1
    entry = parse_line(entry_line, number, path)
    separated = existing if not existing or existing.endswith("\n") else existing + "\n"
    parse(separated + entry_line + "\n", path)  # duplicates of a name or key refused
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as out:
        if existing and not existing.endswith("\n"):
            out.write("\n")
        out.write(
            f"{name} {roles_text(entry.roles)} {fields[0]} {fields[1]}"
            + (f" {comment}" if comment else "")
            + "\n"
        )
    return entry
