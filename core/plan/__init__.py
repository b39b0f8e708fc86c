"""The plan: what a run does, read from TOML and checked before anything starts.

`model` (the validated plan and its loader), `durations` (`90s`, `1h30m`), `preflight` (the plan
against this machine: repository, base, programs, files).
"""
