"""Runtimes by name: the built-in `local`, `sandbox`, `container`, `ssh` and `ray`, and whatever is
registered under `corral.runtimes`.

A package adds a runtime without touching corral by declaring an entry point, e.g.

    [project.entry-points."corral.runtimes"]
    sandbox = "corral_sandbox:SandboxRuntime"

whose target is called with a `RuntimeSetup` and returns a `Runtime` (core/runtime/base.py).
The built-in ones are known without their entry points too, so an install whose metadata predates it (an
editable install not reinstalled) still runs; tests may `register` their own (a FakeRuntime).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

from corral.core.errors import InputError
from corral.core.runtime.base import Runtime, RuntimeSetup

ENTRY_POINT_GROUP = "corral.runtimes"
Factory = Callable[[RuntimeSetup], Runtime]


def _local(setup: RuntimeSetup) -> Runtime:
    from corral.core.runtime.local import LocalRuntime

    return LocalRuntime(setup)


def _sandbox(setup: RuntimeSetup) -> Runtime:
    from corral.core.runtime.sandbox import SandboxRuntime

    return SandboxRuntime(setup)


def _container(setup: RuntimeSetup) -> Runtime:
    from corral.core.runtime.container import ContainerRuntime

    return ContainerRuntime(setup)


def _ssh(setup: RuntimeSetup) -> Runtime:
    from corral.core.runtime.ssh import SshRuntime

    return SshRuntime(setup)


def _ray(setup: RuntimeSetup) -> Runtime:
    """Only this imports Ray (an optional extra, `corral[ray]`), and only when a plan names it."""
    from corral.core.ray.cluster import require_ray

    require_ray()
    from corral.core.runtime.ray_runtime import RayRuntime

    return RayRuntime(setup)


_BUILT_IN: dict[str, Factory] = {
    "local": _local,
    "sandbox": _sandbox,
    "container": _container,
    "ssh": _ssh,
    "ray": _ray,
}
_registered: dict[str, Factory] = {}


class UnknownRuntime(InputError):
    """A plan names a runtime that is neither built in nor installed."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"no runtime {name!r} is installed; known runtimes: {', '.join(known)} "
            f"(a runtime registers under the {ENTRY_POINT_GROUP!r} entry-point group)"
        )


def register(name: str, factory: Factory) -> None:
    """Make `name` known in this process (tests; a plugin that cannot declare an entry point)."""
    _registered[name] = factory


def unregister(name: str) -> None:
    _registered.pop(name, None)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {point.name: point for point in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known() -> list[str]:
    """Every runtime name this process can make, sorted."""
    return sorted({*_BUILT_IN, *_registered, *_entry_points()})


def is_known(name: str) -> bool:
    """Cheap for the built-in and registered ones: the installed packages are read only for
    another name (reading their metadata takes tens of milliseconds)."""
    return name in _registered or name in _BUILT_IN or name in _entry_points()


def factory(name: str) -> Factory:
    """The factory for `name`; raises UnknownRuntime naming the ones there are."""
    if name in _registered:
        return _registered[name]
    if name in _BUILT_IN:
        return _BUILT_IN[name]
    point = _entry_points().get(name)
    if point is None:
        raise UnknownRuntime(name, known())
    loaded: Factory = point.load()
    return loaded


def make(name: str, setup: RuntimeSetup) -> Runtime:
    """A runtime instance for one engine."""
    return factory(name)(setup)
