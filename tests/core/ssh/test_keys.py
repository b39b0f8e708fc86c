"""corral's authorized keys file: each bad line is an error naming its number and the fix, and
`--add-key` writes only what the server will read back."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from corral.core.ssh import keys
from corral.core.ssh.keys import KeysFileError
from tests.core.ssh.ssh_helpers import fingerprint_of, make_key


@pytest.fixture
def public(tmp_path: Path) -> str:
    """One ed25519 public key line, `ssh-ed25519 AAAA... alice@test`."""
    return Path(f"{make_key(tmp_path, 'alice')}.pub").read_text().strip()


def test_a_good_file_reads_with_names_roles_and_fingerprints(tmp_path: Path, public: str) -> None:
    path = tmp_path / "authorized_keys"
    path.write_text(f"# the team\n\nalice viewer,reviewer {public}\n")
    loaded = keys.load(path)
    (alice,) = loaded.keys
    assert (alice.name, alice.roles, alice.line) == ("alice", frozenset({"viewer", "reviewer"}), 3)
    assert alice.fingerprint == fingerprint_of(tmp_path / "alice.pub")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 x", "line 2: the line starts with the key type"),
        ("alice viewer", "line 2: 2 field(s) where a key line has NAME ROLES KEYTYPE BASE64"),
        ("al/ce viewer ssh-ed25519 AAAA", "line 2: the name 'al/ce' is not a name"),
        ("alice admin ssh-ed25519 AAAA", "line 2: 'admin' is not a role: say one or more of"),
        ("alice viewer ssh-ed25519 bm90IGEga2V5", "line 2: not a public key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "line 2: this is a private key"),
    ],
)
def test_a_bad_line_names_its_number_and_the_fix(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "authorized_keys"
    path.write_text(f"# keys\n{line}\n")
    with pytest.raises(KeysFileError) as raised:
        keys.load(path)
    assert f"{path} {says}" in str(raised.value)


def test_a_key_type_that_does_not_match_the_key_is_refused(tmp_path: Path, public: str) -> None:
    path = tmp_path / "authorized_keys"
    path.write_text("alice viewer ssh-rsa " + public.split()[1] + "\n")
    with pytest.raises(
        KeysFileError, match="the key says it is ssh-ed25519, the line says ssh-rsa"
    ):
        keys.load(path)


def test_duplicate_names_and_keys_are_refused(tmp_path: Path, public: str) -> None:
    other = Path(f"{make_key(tmp_path, 'bob')}.pub").read_text().strip()
    path = tmp_path / "authorized_keys"
    path.write_text(f"alice viewer {public}\nalice operator {other}\n")
    with pytest.raises(KeysFileError, match="line 2: the name alice is already line 1's"):
        keys.load(path)
    path.write_text(f"alice viewer {public}\nbob operator {public}\n")
    with pytest.raises(KeysFileError, match=r"line 2: the same key as line 1 \(alice\)"):
        keys.load(path)


def test_no_file_or_no_key_says_how_to_add_one(tmp_path: Path) -> None:
    path = tmp_path / "authorized_keys"
    with pytest.raises(KeysFileError, match=r"no keys file at .*--add-key NAME ROLES KEY\.pub"):
        keys.load(path)
    path.write_text("# only comments\n")
    with pytest.raises(KeysFileError, match=r"no keys in .*--add-key NAME ROLES KEY\.pub"):
        keys.load(path)


def test_add_key_makes_a_private_file_the_server_reads_back(tmp_path: Path, public: str) -> None:
    path = tmp_path / "ssh" / "authorized_keys"
    entry = keys.add_key(path, "alice", "reviewer,viewer", tmp_path / "alice.pub")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == f"alice viewer,reviewer {public}\n"
    assert keys.load(path).keys[0].fingerprint == entry.fingerprint
    with pytest.raises(KeysFileError, match="the name alice is already line 1's"):
        keys.add_key(path, "alice", "viewer", tmp_path / "alice.pub")
    with pytest.raises(KeysFileError, match="'boss' is not a role"):
        keys.add_key(path, "bob", "boss", tmp_path / "alice.pub")
    assert path.read_text() == f"alice viewer,reviewer {public}\n", "a refused key adds nothing"


def test_the_ssh_client_agrees_with_the_fingerprint(tmp_path: Path, public: str) -> None:
    """ssh-keygen computes the same SHA256 fingerprint from the keys file's own line."""
    path = tmp_path / "authorized_keys"
    path.write_text(f"alice viewer {public}\n")
    listed = subprocess.run(
        ["ssh-keygen", "-lf", "-"], input=public, capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert keys.load(path).keys[0].fingerprint == listed
