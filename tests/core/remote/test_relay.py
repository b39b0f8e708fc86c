"""The forwarded socket's relay: every request a remote agent sends is its own attempt's."""

from __future__ import annotations

import json
import typing

from corral.core.control.protocol import Request, RequestAdapter
from corral.core.remote.relay import NO_TOKEN_OPS, stamp


def _ops() -> dict[str, bool]:
    """Each request op of the protocol, and whether its model has a `token` field."""
    found = {}
    union = typing.get_args(Request)[0]  # Annotated[A | B | ..., discriminator]
    for model in typing.get_args(union):
        found[model.model_fields["op"].default] = "token" in model.model_fields
    return found


def test_the_ops_without_a_token_are_the_protocols() -> None:
    ops = _ops()
    assert ops, "the protocol's request union was not found"
    assert {op for op, has in ops.items() if not has} == NO_TOKEN_OPS


def test_every_other_request_carries_the_attempts_token_whatever_it_said() -> None:
    kill = json.loads(stamp(b'{"op": "kill", "agent": "b", "by": "x"}\n', "mine"))
    assert kill["token"] == "mine", "an operator request from the host is the attempt's"
    forged = json.loads(
        stamp(b'{"op": "heartbeat", "agent": "b", "attempt": 1, "token": "t"}', "mine")
    )
    assert forged["token"] == "mine", "another attempt's token is replaced"
    assert stamp(b'{"op": "ping"}\n', "mine") == b'{"op": "ping"}\n'
    assert stamp(b"not json\n", "mine") == b"not json\n"
    RequestAdapter.validate_json(stamp(b'{"op": "lock_list"}', "mine"))
