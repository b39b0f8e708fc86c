"""Presets: agent CLIs (Claude Code, Codex, Gemini CLI, opencode, Aider) as data.

A preset is a TOML file with a typed schema (`schema.py`): the command template, the
environment it needs by reference, the default kind and timeouts, the install hint, the stream
adapter. The packaged ones are in `data/`; a repository adds or overrides its own in
`.corral/presets/` (`catalog.py`). At preflight an agent with `preset = "..."` is expanded into
its command, environment, kind and stream (`expand.py`); each attempt then renders the command
and writes its per-attempt overlay files into its own directory (`attempt.py`), never into the
user's own CLI configuration. What a run used is frozen in its run directory (`frozen.py`) so a
resumed run starts the same commands.
"""
