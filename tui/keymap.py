"""Users remap keys by binding id: `~/.config/corral/keymap.toml` with a `[keys]` table, e.g.
`"dashboard.kill" = "ctrl+k"` (the ids are listed in `?` help)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "corral" / "keymap.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str]:
    """The user's keymap and a problem to show ('' when fine or absent)."""
    path = path or keymap_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}, ""
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return {}, f"{path}: {exc}; using the default keys"
    keys = data.get("keys", {})
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        return {}, f"{path}: [keys] must map binding ids to key names; using the default keys"
    return {str(k): v for k, v in keys.items()}, ""
