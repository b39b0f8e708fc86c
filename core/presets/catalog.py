"""Every preset a run can name: the packaged ones (`data/*.toml`), then the repository's own
(`.corral/presets/*.toml`), which override a packaged one of the same name.

A file that cannot be read or does not fit the schema is an error naming the file and the field
(exit 2), never skipped: a preset silently missing would run a different command.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from corral.core.errors import InputError
from corral.core.presets.schema import Preset

USER_DIR = Path(".corral") / "presets"
"""Inside the repository: a team's own presets, under version control with the code."""


class PresetError(InputError):
    """A preset file that cannot be used; says which file and field, and the fix."""


@dataclass(frozen=True)
class Entry:
    preset: Preset
    source: str
    """The file it came from (`packaged:claude-code.toml` for the packaged ones)."""


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, Entry] = field(default_factory=dict)

    def get(self, name: str) -> Preset | None:
        entry = self.entries.get(name)
        return entry.preset if entry else None

    def names(self) -> list[str]:
        return sorted(self.entries)

    @classmethod
    def of(cls, presets: list[Preset], source: str = "frozen") -> Catalog:
        return cls({preset.name: Entry(preset, source) for preset in presets})


def parse_preset(text: str, source: str) -> Preset:
    """One preset file's text, validated; PresetError names the file and each bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: is not valid TOML ({exc}); fix the syntax there") from None
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(the file)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "is not a preset field; check its spelling"
            elif error["type"] == "missing":
                message = "is required; add it"
            lines.append(f"  - {where}: {message}")
        raise PresetError(f"{source}: not a valid preset:\n" + "\n".join(lines)) from None
    problem = preset.mcp_problem()
    if problem is not None:
        raise PresetError(f"{source}: not a valid preset:\n  - mcp: {problem}")
    return preset


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PresetError(f"{path}: is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def packaged() -> list[Entry]:
    """The presets that ship with corral."""
    data = resources.files("corral.core.presets").joinpath("data")
    found = []
    for item in sorted(data.iterdir(), key=lambda item: item.name):
        if item.name.endswith(".toml"):
            source = f"packaged:{item.name}"
            found.append(Entry(parse_preset(item.read_text(encoding="utf-8"), source), source))
    return found


def user_presets(repo_top: Path) -> list[Entry]:
    """The repository's own presets, in `.corral/presets/*.toml`."""
    directory = repo_top / USER_DIR
    if not directory.is_dir():
        return []
    return [
        Entry(parse_preset(_read(path), str(path)), str(path))
        for path in sorted(directory.glob("*.toml"))
    ]


def load_catalog(repo_top: Path | None = None) -> Catalog:
    """The packaged presets, overridden by name by the repository's."""
    entries: dict[str, Entry] = {}
    for group in (packaged(), user_presets(repo_top) if repo_top else []):
        seen: dict[str, str] = {}
        for entry in group:
            name = entry.preset.name
            if name in seen:
                raise PresetError(
                    f"{entry.source}: preset {name!r} is also defined in {seen[name]}; "
                    "give each preset its own name"
                )
            seen[name] = entry.source
            entries[name] = entry
    return Catalog(entries)
