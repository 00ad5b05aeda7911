#!/usr/bin/env bash
# mypy (strict, config in pyproject.toml) over the whole pack: the pure modules and the node layer.
# mypy names modules after their folders, and a checkout folder such as "comfyui-wavespeed-kontext"
# is not a valid package name; so the pack is checked through a symlink with a valid name, which
# also lets mypy follow the node layer's relative imports (`from ..wavespeed import ...`).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ln -s "$REPO" "$tmp/wavespeed_kontext"
cd "$tmp"
"$REPO/.venv/bin/mypy" --config-file "$REPO/pyproject.toml" --cache-dir "$REPO/.mypy_cache" \
  -m wavespeed_kontext -p wavespeed_kontext.wavespeed -p wavespeed_kontext.nodes -p wavespeed_kontext.emulator
