"""A container image: a root filesystem directory the `container` runtime runs agents in.

No daemon and no image format: an image is a directory holding a root filesystem (made with
`mmdebstrap`, or a `docker export` unpacked; docs/containers.md). bubblewrap mounts its top
level read-only as `/` (core/sandbox/bwrap.py). This module finds it (`resolve_image`), says
whether a directory is one (`image_problem`), and looks inside it for a program the way the
agent's shell will (`image_which`), so preflight can refuse a plan the image cannot run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The agent's PATH in an image unless the plan's `env` sets one (Debian's default for root)."""
IMAGE_HOME = "/tmp"
"""The agent's HOME in an image unless the plan's `env` sets one: the private, writable /tmp
(the image itself is read-only, and tools expect to write under their HOME)."""
BUILD_HINT = (
    "build one with `mmdebstrap --variant=essential --include=python3 bookworm DIR` "
    "(docs/containers.md)"
)
_PYTHON = re.compile(r"^python3\.(\d+)$")


def resolve_image(text: str, repo_top: Path, home: Path) -> Path:
    """The image directory the plan's `image` names: absolute, `~/...`, or relative to the
    repository's top (the plan itself is kept in the run directory, so not relative to it)."""
    if text == "~" or text.startswith("~/"):
        return Path(str(home) + text[1:])
    path = Path(text)
    return path if path.is_absolute() else repo_top / path


def image_problem(image: Path) -> str | None:
    """Why `image` cannot be a root filesystem (with the fix), or None if it can."""
    if not image.is_dir():
        return f"image {str(image)!r} is not a directory; {BUILD_HINT}"
    if not any((image / name).exists() for name in ("usr", "bin")):
        return f"image {str(image)!r} holds no usr/ or bin/, so it is not a root filesystem; {BUILD_HINT}"
    return None


def _inside(image: Path, path: str, mounts: Sequence[PurePosixPath] = ()) -> Path:
    """The host file the agent sees as `path`: absolute symlinks in the image (bin -> /usr/bin)
    point into the image, not into the host, and a host path the policy binds at its own place
    (`mounts`: the `read` and `write` paths) is the host's."""
    seen = PurePosixPath("/")
    parts = [p for p in path.split("/") if p]
    hops = 0
    while parts:
        seen = seen / parts.pop(0)
        for mount in mounts:
            if seen == mount or mount in seen.parents:
                return Path(seen, *parts)
        candidate = image / seen.relative_to("/")
        if candidate.is_symlink() and hops < 40:
            hops += 1
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p] + parts
            seen = PurePosixPath("/") if target.startswith("/") else seen.parent
    return image / seen.relative_to("/")


def image_which(
    image: Path, program: str, search: str = IMAGE_PATH, mounts: Sequence[PurePosixPath] = ()
) -> str | None:
    """Where `program` is inside the image (its path as the agent sees it), or None."""
    if "/" in program:
        found = _inside(image, program, mounts)
        return program if found.is_file() and os.access(found, os.X_OK) else None
    for directory in search.split(":"):
        if not directory:
            continue
        inside = f"{directory.rstrip('/')}/{program}"
        found = _inside(image, inside, mounts)
        if found.is_file() and os.access(found, os.X_OK):
            return inside
    return None


def image_python(image: Path, mounts: Sequence[PurePosixPath] = ()) -> tuple[int, int] | None:
    """The newest `python3.N` of the image (the agent's `corral` tools need 3.11 or newer)."""
    versions = []
    for directory in ("/usr/bin", "/usr/local/bin"):
        folder = _inside(image, directory, mounts)
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            match = _PYTHON.match(entry.name)
            if match:
                versions.append((3, int(match.group(1))))
    return max(versions) if versions else None
