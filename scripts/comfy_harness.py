"""Drive a real headless ComfyUI (0.33.0; 0.3.75 and others via COMFYUI_DIR) over its HTTP + websocket API, for e2e tests and the demo.

Why a harness: unit tests cannot prove that ComfyUI loads the pack, that the shipped UI-format
workflows still match the nodes' widget order, or that a prompt really runs and saves images. This
module starts ComfyUI as a child process in a throw-away base directory (the pack symlinked into
custom_nodes), converts UI workflows to the API format the way the frontend does, runs prompts and
collects every websocket event. It never imports the pack's own code.

    from scripts.comfy_harness import ComfyServer, run_workflow_file
    with ComfyServer(env={"WAVESPEED_BASE_URL": url, "WAVESPEED_API_KEY": key}) as server:
        result = run_workflow_file(server, "example_workflows/flux_kontext_max_text_to_image.json")
        assert result.ok, result.error_line()
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
COMFY_CACHE = REPO_ROOT / ".cache" / "comfyui"
#: The main target (newest supported release) and the oldest supported one, as scripts/bootstrap.sh lays them out.
NEWEST_VERSION = "0.33.0"
OLDEST_VERSION = "0.3.75"
DEFAULT_COMFY_DIR = COMFY_CACHE / f"ComfyUI-{NEWEST_VERSION}"
OLDEST_COMFY_DIR = COMFY_CACHE / f"ComfyUI-{OLDEST_VERSION}"
SHIM_DIR = REPO_ROOT / "scripts" / "comfy_shim"
PACK_NAME = "comfyui-wavespeed-kontext"
SHIM_NAME = "torchvision_cpu_shim"

#: Node types that exist only in the frontend; they never reach the API prompt.
FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
#: Input types the frontend renders as widgets (a list type is a COMBO too).
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
#: Values of the frontend's "control after generate" widget.
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
#: Combo options that make the frontend append an upload button widget (its value is serialized).
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
MODE_MUTED = 2
MODE_BYPASS = 4


class ComfyNotInstalledError(RuntimeError):
    """ComfyUI is not where the harness looks for it."""


class ComfyServerError(RuntimeError):
    """The ComfyUI child process failed to start or died; the message carries the log tail."""


# --------------------------------------------------------------------------------------------- install


def comfy_dir() -> Path:
    """The ComfyUI tree to run: $COMFYUI_DIR if set, else .cache/comfyui/ComfyUI-0.33.0 (bootstrap)."""
    env = os.environ.get("COMFYUI_DIR")
    return Path(env).expanduser().resolve() if env else DEFAULT_COMFY_DIR


def ensure_installed() -> Path:
    """Return comfy_dir(), or raise ComfyNotInstalledError saying how to install it."""
    path = comfy_dir()
    if not (path / "main.py").is_file():
        hint = (
            "COMFYUI_DIR points at a directory without main.py"
            if os.environ.get("COMFYUI_DIR")
            else f"run scripts/bootstrap.sh (it installs ComfyUI {NEWEST_VERSION} into {DEFAULT_COMFY_DIR})"
        )
        raise ComfyNotInstalledError(f"ComfyUI not found at {path}: {hint}")
    return path


def comfy_version(path: str | os.PathLike[str]) -> str:
    """The release of a ComfyUI tree, from its comfyui_version.py ("" if it has none)."""
    try:
        text = (Path(path) / "comfyui_version.py").read_text(encoding="utf-8")
    except OSError:
        return ""
    match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    return match.group(1) if match else ""


def frontend_root(path: str | os.PathLike[str]) -> Path | None:
    """The frontend a ComfyUI tree was released with, when it is not the installed one.

    Why: 0.3.75 and 0.33.0 pin different comfyui-frontend-package versions, yet share one venv (the
    newest's). bootstrap.sh unpacks the older frontend into .cache/comfyui/frontend-X; this returns
    that folder (for --front-end-root) when the tree's requirements.txt pins X and X is not installed.
    """
    try:
        reqs = (Path(path) / "requirements.txt").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^comfyui-frontend-package==(\S+)", reqs, re.MULTILINE)
    if not match:
        return None
    want = match.group(1)
    try:
        have = importlib.metadata.version("comfyui-frontend-package")
    except importlib.metadata.PackageNotFoundError:
        have = ""
    root = COMFY_CACHE / f"frontend-{want}"
    return root if have != want and (root / "index.html").is_file() else None


def free_port() -> int:
    """A currently free loopback TCP port (tiny race window; fine for a test harness)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Child-side (preexec): SIGTERM the server if the harness process dies, so none is left over."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ---------------------------------------------------------------------------------------------- server


class ComfyServer:
    """A ComfyUI child process in a fresh temp --base-directory; use as a context manager.

    custom_nodes/ holds symlinks to the torchvision CPU shim and to this repo (as
    `comfyui-wavespeed-kontext`), plus any `extra_packs`. `env` is added to the child's environment
    (e.g. WAVESPEED_BASE_URL / WAVESPEED_API_KEY). `--disable-api-nodes` is passed by default: it
    keeps ComfyUI's own paid partner nodes (and their network calls) out; custom packs are unaffected.
    On Linux the child gets PR_SET_PDEATHSIG, so it is SIGTERMed if the thread that started it exits:
    start servers from a long-lived thread (pytest's main thread is fine).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        cache_none: bool = False,
        disable_api_nodes: bool = True,
        comfy_path: str | os.PathLike[str] | None = None,
        python: str | None = None,
        pack_dir: str | os.PathLike[str] | None = REPO_ROOT,
        extra_packs: Mapping[str, str | os.PathLike[str]] | None = None,
        keep_dir: bool = False,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 90.0,
        port: int | None = None,
    ) -> None:
        self.comfy_path = Path(comfy_path).resolve() if comfy_path else ensure_installed()
        self.python = python or os.environ.get("COMFYUI_PYTHON") or sys.executable
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.cache_none = cache_none
        self.disable_api_nodes = disable_api_nodes
        self.pack_dir = Path(pack_dir).resolve() if pack_dir is not None else None
        self.extra_packs = {k: Path(v).resolve() for k, v in (extra_packs or {}).items()}
        self.keep_dir = keep_dir
        self._log_path = Path(log_path).resolve() if log_path is not None else None
        self.startup_timeout = startup_timeout
        self.port = port or 0
        self.base_dir = Path()
        self.startup_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._object_info: dict[str, Any] | None = None
        self.last_pid: int | None = None  # PID of the last stopped child (tests check it is gone)

    # -- paths and state
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def temp_dir(self) -> Path:
        return self.base_dir / "temp"

    @property
    def log_path(self) -> Path:
        """The server's log: `log_path` if given (it outlives the server), else inside the base dir."""
        return self._log_path or self.base_dir / "comfyui.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """The server's whole log (stdout + stderr) so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def command(self) -> list[str]:
        """The exact argv used to start ComfyUI (useful in failure messages)."""
        cmd = [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--database-url",
            "sqlite:///:memory:",
            "--base-directory",
            str(self.base_dir),
            "--output-directory",
            str(self.output_dir),
            "--input-directory",
            str(self.input_dir),
        ]
        if self.disable_api_nodes:
            cmd.append("--disable-api-nodes")
        front_end = frontend_root(self.comfy_path)
        if front_end is not None:
            cmd += ["--front-end-root", str(front_end)]
        if self.cache_none:
            cmd.append("--cache-none")
        return cmd + self.extra_args

    # -- lifecycle
    def start(self) -> ComfyServer:
        """Create the base dir, start main.py, wait until /object_info answers (or raise with the log)."""
        if self._proc is not None:
            raise RuntimeError("server already started")
        t0 = time.monotonic()
        self.base_dir = Path(tempfile.mkdtemp(prefix="comfy-e2e-"))
        nodes_dir = self.base_dir / "custom_nodes"
        for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
            (self.base_dir / sub).mkdir()
        (nodes_dir / SHIM_NAME).symlink_to(SHIM_DIR, target_is_directory=True)
        if self.pack_dir is not None:
            (nodes_dir / PACK_NAME).symlink_to(self.pack_dir, target_is_directory=True)
        for name, path in self.extra_packs.items():
            (nodes_dir / name).symlink_to(path, target_is_directory=True)
        if self.pack_dir is not None:  # images the shipped example workflows load with LoadImage
            for image in sorted((self.pack_dir / "example_workflows" / "input").glob("*")):
                if image.is_file():
                    shutil.copyfile(image, self.base_dir / "input" / image.name)
        if not self.port:
            self.port = free_port()
        env = os.environ.copy()
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115  # closed in stop()
        try:
            self._proc = subprocess.Popen(
                self.command(),
                cwd=self.comfy_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches the harness only; it stops us
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            self._wait_ready(t0 + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self, deadline: float) -> None:
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ComfyServerError(
                    f"ComfyUI exited with code {self._proc.returncode} during startup "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/object_info", timeout=10) as resp:
                    self._object_info = json.loads(resp.read())
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ComfyServerError(
                    f"ComfyUI did not answer /object_info within {self.startup_timeout:.0f} s "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the child by PID, SIGKILL after `grace_s`, then remove the base dir (unless kept)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=grace_s)
            self.last_pid = proc.pid
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if not self.keep_dir and self.base_dir != Path() and self.base_dir.exists():
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- HTTP helpers
    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def post_json(self, path: str, body: Any, timeout: float = 30.0) -> tuple[int, Any]:
        """POST JSON; returns (status, parsed body) also for 4xx/5xx instead of raising."""
        data = json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        if self._object_info is None or refresh:
            self._object_info = self.get_json("/object_info")
        return self._object_info


def object_info(server: ComfyServer) -> dict[str, Any]:
    """/object_info of the running server (cached after startup): every node's inputs and outputs."""
    return server.object_info()


def interrupt(server: ComfyServer, prompt_id: str | None = None) -> None:
    """POST /interrupt (what the UI's Cancel button does); with prompt_id only if that one runs."""
    server.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})


# ----------------------------------------------------------------------------------- UI -> API format


@dataclass
class _Widget:
    name: str
    kind: str  # INT FLOAT STRING BOOLEAN COMBO
    options: dict[str, Any]
    choices: list[Any] | None
    extra: int  # serialized helper widgets after it (control_after_generate, combo filter list)


def _input_specs(info: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any], bool]]:
    """Declared inputs in the frontend's widget order: input_order required, optional, then the rest."""
    inputs = info.get("input") or {}
    req: dict[str, Any] = inputs.get("required") or {}
    opt: dict[str, Any] = inputs.get("optional") or {}
    order = info.get("input_order") or {}
    names = [n for n in order.get("required", []) if n in req]
    names += [n for n in order.get("optional", []) if n in opt and n not in names]
    names += [n for n in list(req) + list(opt) if n not in names]
    out = []
    for name in names:
        spec = req[name] if name in req else opt[name]
        spec = spec if isinstance(spec, (list, tuple)) else [spec]
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        out.append((name, spec[0], opts, name in req))
    return out


def _widget_for(name: str, typ: Any, opts: dict[str, Any]) -> _Widget | None:
    """The widget the frontend makes for one input, or None if it is a link-only input."""
    if opts.get("forceInput"):
        return None
    choices: list[Any] | None
    if isinstance(typ, (list, tuple)):
        kind, choices = "COMBO", list(typ)
    elif typ in WIDGET_TYPES:
        kind = typ
        choices = list(opts.get("options") or []) if typ == "COMBO" else None
    else:
        return None
    extra = 0
    if kind == "INT":
        # frontend: `spec.control_after_generate ?? ["seed", "noise_seed"].includes(name)`
        cag = opts.get("control_after_generate")
        extra = 1 if (cag if cag is not None else name in ("seed", "noise_seed")) else 0
    elif kind == "COMBO" and opts.get("control_after_generate"):
        extra = 2  # combo control adds the control widget and a filter-list text widget
    return _Widget(name, kind, opts, choices, extra)


def _check_value(where: str, w: _Widget, value: Any, check_combo_values: bool) -> Any:
    """Validate one widget value like the frontend/server would, so a stale widget order fails loudly."""
    if w.kind == "INT":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: INT widget got {value!r} (stale widget order?)")
    elif w.kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: FLOAT widget got {value!r} (stale widget order?)")
    elif w.kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: BOOLEAN widget got {value!r} (stale widget order?)")
    elif w.kind == "STRING":
        if not isinstance(value, str):
            raise ValueError(f"{where}: STRING widget got {value!r} (stale widget order?)")
    elif w.kind == "COMBO" and check_combo_values and w.choices is not None and value not in w.choices:
        raise ValueError(f"{where}: {value!r} is not one of the COMBO options {w.choices!r}")
    if w.kind in ("INT", "FLOAT"):
        lo, hi = w.options.get("min"), w.options.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"{where}: {value!r} is outside [{lo}, {hi}]")
    return value


def _links_table(workflow: dict[str, Any]) -> dict[int, tuple[int, int, int, int, Any]]:
    """link id -> (origin node, origin slot, target node, target slot, type); list or object form."""
    table: dict[int, tuple[int, int, int, int, Any]] = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            lid = link["id"]
            table[int(lid)] = (
                link["origin_id"],
                int(link["origin_slot"]),
                link["target_id"],
                int(link["target_slot"]),
                link.get("type"),
            )
        else:
            lid, a, a_slot, b, b_slot, typ = link[:6]
            table[int(lid)] = (a, int(a_slot), b, int(b_slot), typ)
    return table


def ui_to_api(
    workflow_ui: dict[str, Any], object_info: dict[str, Any], *, check_combo_values: bool = True
) -> dict[str, Any]:
    """Convert a UI-format workflow (what the frontend saves) to the API prompt format, strictly.

    Mirrors the 0.3.75 frontend (1.32.x): widgets_values holds one entry per widget in declared input
    order (input_order), including widgets whose input is linked, plus the serialized helper widgets
    (INT control_after_generate, or by default for `seed`/`noise_seed`; COMBO control + filter list;
    the upload button of image/video upload combos, last). Muted (2) and bypassed (4) nodes are left
    out (bypass passes a same-typed input through, like the frontend); Note/MarkdownNote are dropped,
    Reroute is followed, PrimitiveNode values are inlined. Raises ValueError naming the node and input
    when the widget count, a COMBO value or a value type does not match /object_info.
    """
    if not isinstance(workflow_ui, dict) or "nodes" not in workflow_ui:
        raise ValueError("not a UI-format workflow (no 'nodes'); API-format prompts need no conversion")
    subgraph_ids = {sg.get("id") for sg in ((workflow_ui.get("definitions") or {}).get("subgraphs") or [])}
    nodes: dict[Any, dict[str, Any]] = {}
    for n in workflow_ui["nodes"]:
        nodes[n["id"]] = n
        nodes[str(n["id"])] = n
    links = _links_table(workflow_ui)

    def label(node: dict[str, Any]) -> str:
        title = node.get("title")
        return f"node {node['id']} ({node['type']}{', ' + repr(title) if title else ''})"

    def link_of(node: dict[str, Any], input_name: str) -> int | None:
        for slot in node.get("inputs") or []:
            if slot.get("name") == input_name or (slot.get("widget") or {}).get("name") == input_name:
                return None if slot.get("link") is None else int(slot["link"])
        return None

    def resolve(link_id: int, want_type: Any, where: str) -> tuple[str, Any] | None:
        """Follow a link through Reroute / bypassed nodes: ("link", [id, slot]) or ("value", v)."""
        for _ in range(1000):
            if link_id not in links:
                raise ValueError(f"{where}: link {link_id} is missing from the workflow's links")
            origin, slot, _t, _ts, _typ = links[link_id]
            src = nodes.get(origin)
            if src is None:
                raise ValueError(f"{where}: link {link_id} comes from a missing node {origin}")
            mode = src.get("mode", 0)
            if src["type"] == "Reroute":
                nxt = (src.get("inputs") or [{}])[0].get("link")
                if nxt is None:
                    return None
                link_id = int(nxt)
                continue
            if src["type"] == "PrimitiveNode":
                values = src.get("widgets_values") or []
                if not values:
                    raise ValueError(f"{where}: {label(src)} has no value")
                return ("value", values[0])
            if mode == MODE_MUTED:
                return None
            if mode == MODE_BYPASS:
                ins = src.get("inputs") or []
                order = ([slot] if slot < len(ins) else []) + list(range(len(ins)))
                nxt = None
                for i in order:
                    if ins[i].get("type") == want_type:
                        nxt = ins[i].get("link")
                        break
                if nxt is None:
                    return None
                link_id = int(nxt)
                continue
            return ("link", [str(src["id"]), slot])
        raise ValueError(f"{where}: link cycle through Reroute/bypassed nodes")

    prompt: dict[str, Any] = {}
    for node in workflow_ui["nodes"]:
        ntype, mode = node.get("type"), node.get("mode", 0)
        if ntype in FRONTEND_ONLY_NODES or mode in (MODE_MUTED, MODE_BYPASS):
            continue
        if ntype in subgraph_ids:
            raise ValueError(f"{label(node)}: subgraphs are not supported by ui_to_api")
        info = object_info.get(ntype)
        if info is None:
            raise ValueError(f"{label(node)}: node type {ntype!r} is not in /object_info (pack not loaded?)")
        values = node.get("widgets_values")
        if values is None:
            values = []
        if not isinstance(values, list):
            raise ValueError(f"{label(node)}: widgets_values is a {type(values).__name__}, expected a list")

        specs = _input_specs(info)
        declared = {name for name, *_ in specs}
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None and slot.get("name") not in declared:
                raise ValueError(f"{label(node)}: link into unknown input {slot.get('name')!r}")
        widgets = [(name, typ, opts, _widget_for(name, typ, opts)) for name, typ, opts, _ in specs]
        # the frontend's UploadImage extension adds one upload button for the first required upload combo
        has_upload = any(
            required
            and (isinstance(typ, (list, tuple)) or typ == "COMBO")
            and any(opts.get(f) for f in UPLOAD_FLAGS)
            for _, typ, opts, required in specs
        )
        expected = sum(1 + w.extra for *_, w in widgets if w is not None) + int(has_upload)
        if len(values) != expected:
            names = [f"{n}(+{w.extra})" if w.extra else n for n, _, _, w in widgets if w is not None]
            raise ValueError(
                f"{label(node)}: {len(values)} widgets_values but /object_info implies {expected} "
                f"for widgets {names} (stale widget order or a changed node definition?)"
            )

        inputs: dict[str, Any] = {}
        pos = 0
        for name, typ, _opts, w in widgets:
            where = f"{label(node)} input {name!r}"
            want_type = "COMBO" if isinstance(typ, (list, tuple)) else typ
            link_id = link_of(node, name)
            if w is not None:
                value = values[pos]
                for ctl in values[pos + 1 : pos + 1 + w.extra][:1]:
                    ok = CONTROL_VALUES | ({"increment-wrap"} if w.kind == "COMBO" else set())
                    if ctl not in ok:
                        raise ValueError(
                            f"{where}: control_after_generate value {ctl!r} is not in {sorted(ok)}"
                        )
                pos += 1 + w.extra
                if link_id is None:
                    inputs[name] = _check_value(where, w, value, check_combo_values)
                    continue
            if link_id is None:
                continue
            got = resolve(link_id, want_type, where)
            if got is None:
                continue
            kind, payload = got
            if kind == "value":
                if w is None:
                    raise ValueError(f"{where}: a PrimitiveNode feeds a non-widget input")
                payload = _check_value(where, w, payload, check_combo_values)
            inputs[name] = payload
        prompt[str(node["id"])] = {
            "class_type": ntype,
            "inputs": inputs,
            "_meta": {"title": node.get("title") or info.get("display_name") or ntype},
        }

    # like the frontend: drop inputs that point at nodes left out (muted upstream)
    for entry in prompt.values():
        for key in [k for k, v in entry["inputs"].items() if _is_link(v) and v[0] not in prompt]:
            del entry["inputs"][key]
    return prompt


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


# ------------------------------------------------------------------------------------------ run prompt


@dataclass
class PromptResult:
    """Everything one prompt produced: status, error, outputs, saved files, websocket events, timing."""

    prompt_id: str
    status: str  # "success" | "error" | "interrupted" | "rejected" (POST /prompt refused it)
    error: dict[str, Any] | None
    outputs: dict[str, Any]
    images: list[Path]
    events: list[dict[str, Any]]
    wall_s: float
    history: dict[str, Any] = field(default_factory=dict)
    temp_images: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def events_of(self, *types: str) -> list[dict[str, Any]]:
        """Events of the given websocket message types, in arrival order."""
        return [e for e in self.events if e.get("type") in types]

    def error_line(self) -> str:
        """One human line for the failure (empty on success)."""
        if self.ok:
            return ""
        err = self.error or {}
        if self.status == "rejected":
            msg = (err.get("error") or {}).get("message") if isinstance(err.get("error"), dict) else None
            parts = [msg or "prompt rejected"]
            for nid, ne in (err.get("node_errors") or {}).items():
                for e in ne.get("errors") or []:
                    parts.append(
                        f"node {nid} ({ne.get('class_type')}): {e.get('message')}: {e.get('details')}"
                    )
            return "; ".join(str(p) for p in parts)
        where = f"node {err.get('node_id')} ({err.get('node_type')})" if err.get("node_type") else "prompt"
        if self.status == "interrupted":
            return f"interrupted at {where}"
        text = str(err.get("exception_message") or err.get("exception_type") or "failed").strip()
        return f"{where}: {text.splitlines()[0] if text else 'failed'}"


def _decode_binary(data: bytes) -> dict[str, Any]:
    """A binary websocket frame: TEXT (3) becomes a progress_text event; previews keep only their size."""
    if len(data) < 4:
        return {"type": "binary", "data": {"bytes": len(data)}}
    (event,) = struct.unpack(">I", data[:4])
    if event == 3 and len(data) >= 8:
        (nlen,) = struct.unpack(">I", data[4:8])
        node = data[8 : 8 + nlen].decode("utf-8", "replace")
        text = data[8 + nlen :].decode("utf-8", "replace")
        return {"type": "progress_text", "binary": True, "data": {"node": node, "text": text}}
    return {"type": "binary", "data": {"event": event, "bytes": len(data)}}


def run_prompt(
    server: ComfyServer,
    api_prompt: dict[str, Any],
    timeout: float = 120.0,
    *,
    interrupt_on_timeout: bool = True,
) -> PromptResult:
    """Queue an API-format prompt and wait for it over the websocket, then read /history.

    Ends on execution_success / execution_error / execution_interrupted for this prompt id; raises
    TimeoutError after `timeout` s (interrupting the prompt first) and ComfyServerError if the server
    dies. A prompt refused by validation comes back as status "rejected" with the node_errors.
    """
    import websocket  # websocket-client; imported here so the converter works without it

    t0 = time.monotonic()
    deadline = t0 + timeout
    client_id = uuid.uuid4().hex
    events: list[dict[str, Any]] = []
    ws = websocket.create_connection(f"{server.ws_url}?clientId={client_id}", timeout=10)
    try:
        status_code, body = server.post_json("/prompt", {"prompt": api_prompt, "client_id": client_id})
        if status_code != 200 or not isinstance(body, dict) or "prompt_id" not in body:
            refused: dict[str, Any] = body if isinstance(body, dict) else {"error": {"message": str(body)}}
            return PromptResult("", "rejected", refused, {}, [], events, time.monotonic() - t0)
        prompt_id = str(body["prompt_id"])
        status: str = ""
        error: dict[str, Any] | None = None
        while not status:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if interrupt_on_timeout:
                    interrupt(server, prompt_id)
                raise TimeoutError(
                    f"prompt {prompt_id} did not finish within {timeout:.0f} s; last events: "
                    f"{[e.get('type') for e in events[-8:]]}"
                )
            ws.settimeout(min(remaining, 1.0))
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                if not server.is_running():
                    raise ComfyServerError(
                        f"ComfyUI died while running a prompt:\n{server.log_tail()}"
                    ) from None
                continue
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError) as exc:
                raise ComfyServerError(
                    f"websocket closed while waiting for prompt {prompt_id}: {exc}\n{server.log_tail()}"
                ) from exc
            if opcode == websocket.ABNF.OPCODE_BINARY:
                events.append(_decode_binary(bytes(data)))
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            msg = json.loads(data)
            events.append(msg)
            mdata = msg.get("data") or {}
            if mdata.get("prompt_id") != prompt_id:
                continue
            mtype = msg.get("type")
            if mtype == "execution_success":
                status = "success"
            elif mtype == "execution_error":
                status, error = "error", mdata
            elif mtype == "execution_interrupted":
                status, error = "interrupted", mdata
    finally:
        ws.close()

    # the terminal ws event is sent before the worker stores the history entry: wait for it
    history: dict[str, Any] = {}
    history_deadline = time.monotonic() + 15.0
    while True:
        hist = server.get_json(f"/history/{prompt_id}")
        if prompt_id in hist:
            history = hist[prompt_id]
            break
        if time.monotonic() > history_deadline:
            break
        time.sleep(0.05)
    outputs: dict[str, Any] = history.get("outputs") or {}
    images: list[Path] = []
    temp_images: list[Path] = []
    for node_out in outputs.values():
        for item in node_out.get("images") or []:
            if not isinstance(item, dict) or "filename" not in item:
                continue
            root = {"output": server.output_dir, "temp": server.temp_dir}.get(item.get("type", "output"))
            if root is None:
                continue
            path = root / (item.get("subfolder") or "") / item["filename"]
            (images if item.get("type", "output") == "output" else temp_images).append(path)
    return PromptResult(
        prompt_id, status, error, outputs, images, events, time.monotonic() - t0, history, temp_images
    )


def load_workflow(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a workflow JSON file."""
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def run_workflow_file(
    server: ComfyServer, path: str | os.PathLike[str], timeout: float = 120.0
) -> PromptResult:
    """Load a UI-format workflow file, convert it with the server's /object_info, and run it."""
    api = ui_to_api(load_workflow(path), server.object_info())
    return run_prompt(server, api, timeout=timeout)


def upload_image(server: ComfyServer, path: str | os.PathLike[str], name: str | None = None) -> str:
    """Copy an image into the server's input dir (what LoadImage lists); returns the file name."""
    target = server.input_dir / (name or Path(path).name)
    shutil.copyfile(path, target)
    return target.name


__all__ = [
    "ComfyNotInstalledError",
    "ComfyServer",
    "ComfyServerError",
    "PromptResult",
    "comfy_dir",
    "comfy_version",
    "ensure_installed",
    "free_port",
    "frontend_root",
    "interrupt",
    "load_workflow",
    "object_info",
    "run_prompt",
    "run_workflow_file",
    "ui_to_api",
    "upload_image",
]
