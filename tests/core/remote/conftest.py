"""Two real sshd "hosts" on loopback per test module (tests/core/remote/sshd.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.remote.sshd import SSHD, Host, make_host


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Host, Host]]:
    if not Path(SSHD).exists():
        pytest.fail(f"{SSHD} is missing: install openssh-server (.ci/run does)")
    root = tmp_path_factory.mktemp("hosts")
    pair = (make_host(root, "alpha"), make_host(root, "beta"))
    for host in pair:
        host.start()
    try:
        yield pair
    finally:
        for host in pair:
            host.stop()
