"""`corral hosts`: the `ssh` runtime's pool with slots, health and latency
(core/operator/hosts.py holds the rule; this prints it)."""

from __future__ import annotations

import argparse


def add_hosts_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts = sub.add_parser(
        "hosts",
        help="the ssh runtime's hosts (hosts.toml and a plan's [[host]]): slots, health, latency",
    )
    hosts.add_argument("plan", nargs="?", default=None, help="a plan whose [[host]] tables to add")
    hosts.add_argument("--json", action="store_true", help="print the HostList JSON")


def cmd_hosts(args: argparse.Namespace) -> int:
    from pathlib import Path

    from corral.core.cli.common import cwd, fail
    from corral.core.operator.hosts import host_list
    from corral.core.plan.model import load_plan
    from corral.core.remote.config import user_hosts_file
    from corral.core.trust.inert import inert, inert_json
    from corral.worktrees.git import GitError, NotARepository, git_common_dir

    plan_hosts = list(load_plan(Path(args.plan)).hosts) if args.plan else []
    try:
        common = git_common_dir(args.repo or cwd())
    except (NotARepository, GitError):
        common = None  # outside a repository: no runs to count
    listing = host_list(plan_hosts, common)
    if args.json:
        print(inert_json(listing.model_dump_json(indent=2)))
        return 0
    if not listing.hosts:
        return fail(
            f"no hosts: add [[host]] tables to {user_hosts_file()} or name a plan with them"
        )
    for host in listing.hosts:
        health = (
            f"up {host.latency_ms:.0f} ms" if host.up and host.latency_ms is not None else "down"
        )
        line = f"{host.name:<12} {host.address:<28} slots {host.in_use}/{host.slots}  {health}"
        print(inert(line + (f"  ({host.error})" if host.error else "")))
    return 0 if all(host.up for host in listing.hosts) else 1
