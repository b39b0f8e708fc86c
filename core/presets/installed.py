"""Which presets' programs are installed here, for `corral presets` (and the console later).

A program is looked up on PATH as preflight does; its version is asked (`version_args`) only
when it is found, all of them at once and each within VERSION_TIMEOUT, so one slow or hung CLI
costs the listing a few seconds at most.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from corral.core.presets.catalog import Catalog, Entry

VERSION_TIMEOUT = 10.0
"""Node CLIs take a second or two to print their version on a busy machine."""


class PresetStatus(BaseModel):
    """One preset as `corral presets --json` prints it."""

    name: str
    description: str
    program: str
    source: str
    """`packaged:NAME.toml`, or the repository's file that defines (or overrides) it."""
    installed: bool
    path: str | None = None
    version: str | None = None
    install: str
    stream: str | None = None
    homepage: str = ""
    docs: str = ""
    endpoint: str | None = None
    """The variable that points the CLI at another endpoint."""


class PresetList(BaseModel):
    presets: list[PresetStatus]


def _version(path: str, args: list[str]) -> str | None:
    try:
        done = subprocess.run(
            [path, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip()[:80] if done.returncode == 0 and lines else None


def status(entry: Entry, path_variable: str | None, *, versions: bool = True) -> PresetStatus:
    preset = entry.preset
    path = shutil.which(preset.program, path=path_variable)
    return PresetStatus(
        name=preset.name,
        description=preset.description,
        program=preset.program,
        source=entry.source,
        installed=path is not None,
        path=path,
        version=_version(path, preset.version_args) if path and versions else None,
        install=preset.install,
        stream=preset.stream,
        homepage=preset.homepage,
        docs=preset.docs,
        endpoint=preset.endpoint.variable if preset.endpoint else None,
    )


def list_presets(catalog: Catalog, *, versions: bool = True) -> PresetList:
    """Every preset of the catalog, by name, with what is installed on corral's PATH."""
    path = os.environ.get("PATH", os.defpath)
    entries = [catalog.entries[name] for name in catalog.names()]
    with ThreadPoolExecutor(max_workers=max(1, len(entries))) as pool:
        found = list(pool.map(lambda entry: status(entry, path, versions=versions), entries))
    return PresetList(presets=found)
