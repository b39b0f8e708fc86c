"""`corral presets`: the agent CLIs a plan can name, where each comes from, and what is
installed (core/presets/installed.py holds the rule; this prints it)."""

from __future__ import annotations

import argparse


def add_presets_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    presets = sub.add_parser(
        "presets", help="the agent CLIs a plan can name with preset = ..., and which are installed"
    )
    presets.add_argument("--json", action="store_true", help="print the PresetList JSON")
    presets.add_argument(
        "--no-version", action="store_true", help="do not ask installed CLIs for their version"
    )


def cmd_presets(args: argparse.Namespace) -> int:
    from corral.core.cli.common import cwd
    from corral.core.presets.catalog import load_catalog
    from corral.core.presets.installed import list_presets
    from corral.core.trust.inert import inert, inert_json
    from corral.worktrees.git import GitError, NotARepository, repo_toplevel

    try:
        repo_top = repo_toplevel(args.repo or cwd())
    except (NotARepository, GitError):
        repo_top = None  # outside a repository: the packaged presets only
    listing = list_presets(load_catalog(repo_top), versions=not args.no_version)
    if args.json:
        print(inert_json(listing.model_dump_json(indent=2)))
        return 0
    for preset in listing.presets:
        if preset.installed:
            version = f" {preset.version}" if preset.version else ""
            where = f"installed: {preset.path}{version}"
        else:
            where = f"not installed; install: {preset.install}"
        origin = "" if preset.source.startswith("packaged:") else f"  (from {preset.source})"
        print(inert(f"{preset.name:<12} {preset.program:<9} {where}{origin}"))
        endpoint = f"; endpoint: ${preset.endpoint}" if preset.endpoint else ""
        print(inert(f"{'':<12} {preset.description}{endpoint}"))
    return 0
