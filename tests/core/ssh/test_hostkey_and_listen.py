"""The host key is made once and kept (0600), refused when others can read it; `--listen` says
the form it wants."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from corral.core.errors import CorralError, InputError
from corral.core.ssh import hostkey
from corral.core.ssh.options import parse_listen
from tests.core.ssh.ssh_helpers import fingerprint_of


def test_the_host_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "ssh" / "host_ed25519_key"
    made = hostkey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert hostkey.fingerprint(made) == fingerprint_of(path.with_name(path.name + ".pub"))
    assert hostkey.fingerprint(hostkey.load_or_create(path)) == hostkey.fingerprint(made)
    path.chmod(0o644)
    with pytest.raises(CorralError, match=f"readable by others: chmod 600 {path}"):
        hostkey.load_or_create(path)


@pytest.mark.parametrize("text", ["2222", "127.0.0.1", "127.0.0.1:http", ":2222", "h:70000"])
def test_a_bad_listen_address_says_the_form(text: str) -> None:
    with pytest.raises(InputError, match=r"say HOST:PORT, e\.g\. 127\.0\.0\.1:2222"):
        parse_listen(text)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:2222") == ("::1", 2222)
