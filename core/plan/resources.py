"""What an agent needs of a node, and where the run's cluster is (`[run.ray]`, `[agent.resources]`).

Only the `ray` runtime places by these today (core/runtime/ray_runtime.py); others ignore them.
An agent asks for no CPU by default: on a cluster the slot resource (`corral_slot`) is what
bounds how many agents a node runs, not its cores (an agent mostly waits on a model).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from corral.core.plan.durations import positive_duration

RESOURCE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,99}$"
ResourceName = Annotated[str, StringConstraints(pattern=RESOURCE_NAME_PATTERN)]


class RaySettings(BaseModel):
    """`[run.ray]`: the cluster a `runtime = "ray"` run uses (docs/ray.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = "auto"
    """`auto` (the cluster this machine is part of, as `ray start` left it), `host:port` of a
    head node, or `ray://host:10001` (Ray Client, e.g. a KubeRay head's service)."""
    namespace: str = Field(default="corral", min_length=1, max_length=100)
    """The Ray namespace corral's actors are named in (one per corral installation is enough:
    names carry the run id)."""
    slot_resource: ResourceName = "corral_slot"
    """The custom resource each agent takes one of: give each node as many as it should run
    agents at once (`ray start --resources '{"corral_slot": 8}'`)."""
    node_dir: str = Field(default="/tmp/corral-ray", min_length=1)
    """Where attempts live on a node (workspaces, output, sockets, the snapshot cache)."""
    connect_timeout: Annotated[float, BeforeValidator(positive_duration)] = 30.0
    """How long `corral run` waits for the cluster before it gives up (exit 2)."""


class AgentResources(BaseModel):
    """`[agent.resources]` (or `[defaults.resources]`): what one attempt takes of its node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots: float = Field(default=1.0, ge=0, le=1000)
    """How many of the slot resource (`[run.ray] slot_resource`) the attempt takes."""
    cpus: float = Field(default=0.0, ge=0, le=10000)
    """CPUs reserved for it (Ray `num_cpus`); 0: it reserves none, the slots bound it."""
    gpus: float = Field(default=0.0, ge=0, le=1000)
    """GPUs reserved for it (Ray `num_gpus`)."""
    memory_mb: int | None = Field(default=None, ge=1)
    """Memory reserved for it, in MiB (Ray `memory`)."""
    node: ResourceName | None = None
    """Run only on nodes that carry this custom resource (a label: `ray start --resources
    '{"gpu-box": 1}'`); it takes a negligible amount of it."""
    custom: dict[ResourceName, float] = Field(default_factory=dict)
    """Further custom resources and amounts, as Ray's `resources`."""
