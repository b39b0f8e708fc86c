"""A local three-node Ray cluster for the `ray` runtime's tests (one per test module).

Each node has one CPU and `corral_slot` slots; agents take a slot and no CPU. The cluster's
processes run on this machine, so its nodes share the filesystem: nothing in the runtime relies
on that (the snapshot, output, branch and socket traffic all go through Ray), and the tests
check node ids in the logged identities to see where each attempt ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

SLOTS_PER_NODE = 4


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    made = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"corral_slot": SLOTS_PER_NODE}},
    )
    for _ in range(2):
        made.add_node(num_cpus=1, resources={"corral_slot": SLOTS_PER_NODE})
    made.wait_for_nodes()
    try:
        yield made
    finally:
        made.shutdown()


def ray_header(cluster: Any, **fields: object) -> str:
    """The plan's `[run.ray]` table pointing at `cluster`."""
    lines = ["[run.ray]", f'address = "{cluster.address}"']
    lines += [f"{key} = {value!r}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"
