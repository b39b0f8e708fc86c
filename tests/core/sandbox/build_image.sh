#!/usr/bin/env bash
# Build the container tests' image: a Debian root filesystem with Python 3 (about 190 MB, 15 s),
# the way docs/containers.md tells users to build one. Reused when it is already there.
#   tests/core/sandbox/build_image.sh DIR      (then CORRAL_TEST_IMAGE=DIR)
set -euo pipefail
target="${1:?usage: build_image.sh DIR}"
if [ -x "$target/usr/bin/python3" ]; then
  exit 0
fi
suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
rm -rf "$target.partial"
mkdir -p "$(dirname "$target")"
mmdebstrap --quiet --variant=essential --include=python3 "$suite" "$target.partial"
rm -rf "$target"
mv "$target.partial" "$target"
