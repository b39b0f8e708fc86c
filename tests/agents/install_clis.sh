#!/usr/bin/env bash
# Install the five agent CLIs the tests in tests/agents/ run, into a cache outside the repository:
#   CACHE/npm    Claude Code, Codex, Gemini CLI and opencode (npm, Node 20 or later)
#   CACHE/aider  Aider, in a virtual environment of its own (PyPI)
# Usage: tests/agents/install_clis.sh [CACHE]   (default: $CORRAL_AGENT_CLIS or ~/.cache/corral/agents)
# A part already installed is reused as it is; delete it to upgrade. The tests find the cache
# through CORRAL_AGENT_CLIS (tests/agents/clis.py).
set -euo pipefail

cache="${1:-${CORRAL_AGENT_CLIS:-$HOME/.cache/corral/agents}}"
mkdir -p "$cache"
# The versions the tests were written against (tests/agents/README.md says what each needs);
# a newer one may name its tools or flags differently, so upgrade here, on purpose.
npm_packages=(@anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0 @google/gemini-cli@0.61.0 opencode-ai@1.18.33)
aider_package="aider-chat==0.86.2"
npm_binaries=(claude codex gemini opencode)

missing=0
for binary in "${npm_binaries[@]}"; do
  [ -x "$cache/npm/node_modules/.bin/$binary" ] || missing=1
done
if [ "$missing" = 1 ]; then
  echo "installing ${npm_packages[*]} into $cache/npm" >&2
  npm install --prefix "$cache/npm" --no-audit --no-fund "${npm_packages[@]}" >&2
fi

if [ ! -x "$cache/aider/bin/aider" ]; then
  echo "installing $aider_package into $cache/aider" >&2
  rm -rf "$cache/aider"
  python3 -m venv "$cache/aider"
  "$cache/aider/bin/pip" install --quiet "$aider_package" >&2
fi

for binary in "${npm_binaries[@]}"; do
  "$cache/npm/node_modules/.bin/$binary" --version >/dev/null
done
"$cache/aider/bin/aider" --version >/dev/null
echo "$cache"
