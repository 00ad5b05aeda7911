"""ComfyUI server lifecycle for the harness: find the tree, start it as a child process, stop it.

Why its own module: starting ComfyUI (a throw-away base directory with the pack and the torchvision
CPU shim symlinked into custom_nodes, the frontend its release pins, a log that can outlive the run,
no process left behind) is one job; converting workflows (workflow_convert.py) and running prompts
(prompt_runner.py) are others. scripts/comfy_harness.py re-exports all three under the old names.
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
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
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


class ComfyNotInstalledError(RuntimeError):
    """ComfyUI is not where the harness looks for it."""


class ComfyServerError(RuntimeError):
    """The ComfyUI child process failed to start or died; the message carries the log tail."""


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


#: The newest frontend on the package registry, served by 0.33.0 with --front-end-root (bootstrap.sh
#: unpacks it into .cache/comfyui/frontend-1.58.1); COMFYUI_FRONTEND=1.58.1 picks it.
NEWEST_FRONTEND = "1.58.1"


def frontend_root(path: str | os.PathLike[str]) -> Path | None:
    """The frontend to serve the ComfyUI tree with, when it is not the installed one.

    ``COMFYUI_FRONTEND=X`` (e.g. 1.58.1): .cache/comfyui/frontend-X, which must be there. Else the
    frontend the tree was released with: 0.3.75 and 0.33.0 pin different comfyui-frontend-package
    versions, yet share one venv (the newest's); bootstrap.sh unpacks the older frontend into
    .cache/comfyui/frontend-X, returned (for --front-end-root) when the tree's requirements.txt pins X
    and X is not installed.
    """
    chosen = os.environ.get("COMFYUI_FRONTEND", "").strip()
    if chosen:
        root = COMFY_CACHE / f"frontend-{chosen}"
        if not (root / "index.html").is_file():
            raise ComfyNotInstalledError(
                f"COMFYUI_FRONTEND={chosen} but {root} holds no frontend: run scripts/bootstrap.sh "
                f"--frontend {chosen}"
            )
        return root
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


def upload_image(server: ComfyServer, path: str | os.PathLike[str], name: str | None = None) -> str:
    """Copy an image into the server's input dir (what LoadImage lists); returns the file name."""
    target = server.input_dir / (name or Path(path).name)
    shutil.copyfile(path, target)
    return target.name
