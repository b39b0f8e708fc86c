"""Messages on the control socket: one JSON object a line each way.

The engine validates every request with these models; the agent-side client (`client.py`)
builds the same shapes with the standard library only, so `corral heartbeat` starts fast.
A test checks the two agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from corral.core.plan.model import LOCK_NAME_PATTERN

MAX_PUT_BYTES = 1024 * 1024
"""Largest file a fenced write (`corral put`) may carry."""
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
"""A request line longer than this is refused: agents are untrusted. Room for a fenced write's
data in base64 (4/3 of MAX_PUT_BYTES) and the rest of its request."""
MAX_TTL = 86400.0
MAX_INPUT_CHARS = 16000
"""Longest message a person may send to a running agent in one go."""
MAX_WAIT = 86400.0

LockName = Annotated[str, StringConstraints(pattern=LOCK_NAME_PATTERN)]
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PingRequest(_Request):
    op: Literal["ping"] = "ping"


class HeartbeatRequest(_Request):
    """Sent by an agent (`corral heartbeat`) to say it is alive."""

    op: Literal["heartbeat"] = "heartbeat"
    agent: str
    attempt: int
    token: str
    """The attempt's secret from CORRAL_AGENT_TOKEN, so one agent cannot beat for another."""
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    message: str | None = Field(default=None, max_length=500)


class StatusRequest(_Request):
    op: Literal["status"] = "status"


class _OperatorRequest(_Request):
    """A request only a person may make (docs/reliability.md T1); the engine checks who sent it."""

    token: str | None = Field(default=None, max_length=128)
    """Sent only by a client that knows it runs inside an agent (its CORRAL_AGENT_TOKEN), so
    that the engine records the refusal as that attempt's. A request with a token is refused."""


class KillRequest(_OperatorRequest):
    """A person stops an agent; it ends `cancelled` and is not retried."""

    op: Literal["kill"] = "kill"
    agent: str
    by: str
    reason: str = Field(default="", max_length=500)


class StopRequest(_OperatorRequest):
    """A person stops the whole run: every agent's tree is stopped as on SIGTERM, the engine
    records who stopped it (`engine_stopped` with `by`) and exits; `corral run --resume` carries
    on later."""

    op: Literal["stop"] = "stop"
    by: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=500)


class PauseRequest(_OperatorRequest):
    """A person freezes a running agent's whole tree (SIGSTOP); its timeouts stand still."""

    op: Literal["pause"] = "pause"
    agent: str
    by: str = Field(min_length=1, max_length=100)


class UnpauseRequest(_OperatorRequest):
    """A person lets a paused agent go on (SIGCONT)."""

    op: Literal["unpause"] = "unpause"
    agent: str
    by: str = Field(min_length=1, max_length=100)


class InputRequest(_OperatorRequest):
    """A person sends a message to a running agent that takes input (`input_format`)."""

    op: Literal["input"] = "input"
    agent: str
    by: str
    text: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    raw: bool = False
    """Keystrokes written as is (a terminal agent's `send_keys`), not encoded by its
    `input_format`; a message (not raw) to a `tty` agent is typed, then Enter."""
    client: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    """Which front end types (an attached console's own id): a terminal agent takes keys
    from one typist at a time (core/engine/requests.py, TYPIST_HOLD)."""


class ResizeRequest(_OperatorRequest):
    """A person's view of a terminal agent changed size: its terminal takes the new one."""

    op: Literal["resize"] = "resize"
    agent: str
    by: str = Field(min_length=1, max_length=100)
    cols: int = Field(ge=10, le=1000)
    rows: int = Field(ge=2, le=1000)


class RetryRequest(_OperatorRequest):
    """A person asks for another attempt of an agent that has ended."""

    op: Literal["retry"] = "retry"
    agent: str
    by: str


class _AgentRequest(_Request):
    """A request only a running attempt may make: it proves who it is with its secret."""

    agent: str
    attempt: int
    token: str
    """The attempt's secret from CORRAL_AGENT_TOKEN."""


MAX_QUESTION = 2000
MAX_ANSWER = 4000
MAX_CHOICES = 20
Choice = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class AskHumanRequest(_AgentRequest):
    """An agent asks a person a question and waits up to `timeout` seconds for the answer
    (`corral answer`); it is `waiting_for_human` meanwhile. The answer comes back as data."""

    op: Literal["ask_human"] = "ask_human"
    question_id: RequestId
    """Chosen by the client; asking again with the same id waits for the same question."""
    question: str = Field(min_length=1, max_length=MAX_QUESTION)
    choices: list[Choice] = Field(default_factory=list, max_length=MAX_CHOICES)
    timeout: float = Field(gt=0.0, le=MAX_WAIT)


class AnswerRequest(_OperatorRequest):
    """A person answers the question an agent is waiting on (docs/reliability.md T1: never an
    agent, not even its own)."""

    op: Literal["answer"] = "answer"
    agent: str
    by: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=MAX_ANSWER)
    question_id: RequestId | None = None
    """Answer only this question (the one the person was shown), not a newer one."""


class LockAcquireRequest(_AgentRequest):
    """Take an exclusive lease on a named resource, waiting up to `wait` seconds in line."""

    op: Literal["lock_acquire"] = "lock_acquire"
    lock: LockName
    request_id: RequestId
    """Chosen by the client; a retry with the same id gets the same grant (L7)."""
    ttl: float = Field(gt=0.0, le=MAX_TTL)
    """Lease length in seconds; renew before it runs out (every TTL/3)."""
    wait: float = Field(default=0.0, ge=0.0, le=MAX_WAIT)
    """How long to wait in line for the lock; 0 answers at once when it is held."""
    reason: str = Field(default="", max_length=200)
    pid: int | None = Field(default=None, ge=1)
    """The process that will hold the lease, shown beside the holder."""


class LockRenewRequest(_AgentRequest):
    op: Literal["lock_renew"] = "lock_renew"
    lock: LockName
    fencing_token: int = Field(ge=1)
    ttl: float | None = Field(default=None, gt=0.0, le=MAX_TTL)
    """A new lease length; None keeps the current one."""


class LockReleaseRequest(_AgentRequest):
    op: Literal["lock_release"] = "lock_release"
    lock: LockName
    fencing_token: int = Field(ge=1)


class LockListRequest(_Request):
    op: Literal["lock_list"] = "lock_list"


class LockBreakRequest(_OperatorRequest):
    """A person takes a lease away from its holder (recorded with who and why)."""

    op: Literal["lock_break"] = "lock_break"
    lock: LockName
    by: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)
    expect_token: int | None = None
    """Break only if the lease still has this token (the one the person was shown)."""


class PutRequest(_AgentRequest):
    """A fenced write: replace a file under the run's shared directory, if the token is newest."""

    op: Literal["put"] = "put"
    lock: LockName
    fencing_token: int = Field(ge=1)
    path: str = Field(min_length=1, max_length=1024)
    """Relative to the run's shared directory (CORRAL_SHARED)."""
    data: str = Field(max_length=(MAX_PUT_BYTES + 2) // 3 * 4)
    """The file's bytes, base64."""


OperatorAction = Literal[
    "approve",
    "reject",
    "acknowledge tampering",
    "suppress",
    "kill",
    "stop",
    "pause",
    "unpause",
    "retry",
    "input",
    "answer",
    "lock break",
    "gc",
]
"""The operator actions (docs/reliability.md T1), as refusals name them."""


class RefusalReport(_AgentRequest):
    """A running attempt's report of an operator action it was refused, when the run it named
    is hidden from it (a sandboxed agent sees no run directory, so nothing reaches the target
    run's engine or log): the engine logs `operator_action_refused` as that attempt's, which it
    knows by the token, and does nothing else."""

    op: Literal["operator_refused"] = "operator_refused"
    action: OperatorAction
    target: str = Field(min_length=1, max_length=200)
    """What it was aimed at, in the caller's words (`the report of run r1`): logged inert."""


LockRequest = (
    LockAcquireRequest
    | LockRenewRequest
    | LockReleaseRequest
    | LockListRequest
    | LockBreakRequest
    | PutRequest
)

OperatorRequest = (
    KillRequest
    | StopRequest
    | PauseRequest
    | UnpauseRequest
    | RetryRequest
    | LockBreakRequest
    | InputRequest
    | ResizeRequest
    | AnswerRequest
)
"""What the engine answers only when a person asks (core/trust/authority.py decides who asks)."""

Request = Annotated[
    PingRequest
    | HeartbeatRequest
    | StatusRequest
    | KillRequest
    | StopRequest
    | PauseRequest
    | UnpauseRequest
    | RetryRequest
    | InputRequest
    | ResizeRequest
    | LockAcquireRequest
    | LockRenewRequest
    | LockReleaseRequest
    | LockListRequest
    | LockBreakRequest
    | PutRequest
    | RefusalReport
    | AskHumanRequest
    | AnswerRequest,
    Field(discriminator="op"),
]
RequestAdapter: TypeAdapter[Request] = TypeAdapter(Request)

ErrorCode = Literal["denied", "busy", "lost", "refused", "invalid"]
"""Why a request failed, for programs: `denied` (not a running attempt), `busy` (the lock stayed
held for the whole wait), `lost` (the lease is no longer held), `refused` (a fenced write with a
stale token), `invalid` (a request that cannot be carried out as asked)."""


class Response(BaseModel):
    ok: bool
    error: str | None = None
    code: ErrorCode | None = None
    data: dict[str, Any] | None = None
