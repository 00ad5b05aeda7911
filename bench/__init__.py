"""Benchmarks of the pack against the local WaveSpeed emulator on loopback (figures only, no asserts).

Parts (each a ``bench_*.py`` module with ``run(quick=False, **params) -> BenchResult``):
  overhead     node wall time minus the emulator's inference time, polling and sync mode
  concurrency  1/4/8/16 Generate->Poll chains with asyncio, and 1 vs 8 chains in a real ComfyUI
  decode       bench_codec.py: bench_decode.py's table (images_to_tensor vs a bare Pillow decode)
               plus conversion floors
  imports      cold import of the pack in a fresh interpreter; requests per task
  load         200 tasks through one client with 5% injected transient faults
  side_by_side time added on top of inference: our poller, the wavespeed SDK 2.0.5, ComfyUI's poll_op
  scale        100/300 tasks in flight on a Silver-like account; the Bronze batch against its ideal

``python bench/run.py`` runs all of them and writes bench/RESULTS.md; ``--only NAME`` and ``--quick``
run a part alone or a fast smoke version. This package only holds the shared helpers (stdlib at
import time; the emulator, the pack and torch load on first use).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.pack_loader import PACK_NAME, call, load_pack  # noqa: E402,F401  (re-exported for the benches)

load_pack()  # the benches import the pack by its one name: wavespeed_kontext_pack

if TYPE_CHECKING:
    from emulator import Emulator

API_KEY = "bench-key-0123456789"
_ENV_KEYS = (
    "WAVESPEED_API_KEY",
    "WAVESPEED_BASE_URL",
    "WAVESPEED_JOURNAL_DIR",
    "WAVESPEED_JOURNAL_URL",
    "WAVESPEED_CONFIG_FILE",
)


# ------------------------------------------------------------------------------------------ results


@dataclass
class Target:
    """One target of the issue and whether this run met it."""

    text: str
    met: bool
    measured: str = ""


@dataclass
class BenchResult:
    """What one bench part produced: its markdown table(s), raw rows, targets and notes."""

    name: str
    title: str
    tables: list[str]
    rows: list[dict[str, Any]]
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    quick: bool = False

    def markdown(self) -> str:
        out = [f"## {self.title}", ""]
        for table in self.tables:
            out += [table, ""]
        if self.targets:
            for t in self.targets:
                mark = "met" if t.met else "MISSED"
                out.append(f"- target {t.text}: **{mark}**" + (f" ({t.measured})" if t.measured else ""))
            out.append("")
        out += [f"- {n}" for n in self.notes]
        out += ["", f"_{self.name}: {self.seconds:.1f} s{' (--quick)' if self.quick else ''}_", ""]
        return "\n".join(out)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A markdown table; align is one letter per column (l or r, default r after the first)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); nan for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def fmt_s(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def machine_notes() -> dict[str, str]:
    """CPU count, Python, torch/numpy/Pillow versions, platform and date, for RESULTS.md."""
    notes = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "usable cpus": str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "?",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for mod in ("torch", "numpy", "PIL", "requests"):
        try:
            notes[mod] = str(__import__(mod).__version__)
        except Exception:  # pragma: no cover - a missing package is just noted
            notes[mod] = "not installed"
    with contextlib.suppress(Exception):
        import torch

        notes["torch threads"] = str(torch.get_num_threads())
    notes["code"] = _git_state()
    return notes


def _git_state() -> str:
    """HEAD commit, plus the pack files that differ from it (the tree measured may be mid-change)."""
    import subprocess

    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return proc.stdout.rstrip() if proc.returncode == 0 else ""

    head = git("log", "-1", "--format=%h %s")
    if not head:
        return "unknown (not a git checkout)"
    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
        if not line[3:].startswith(("bench/", "tests/"))
    ]
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


# --------------------------------------------------------------------------------- pack + emulator


@contextlib.contextmanager
def emulator_env(*, nodelay: bool = True, **config: Any) -> Iterator[Emulator]:
    """A started emulator on loopback, with the pack's environment pointed at it (key, base URL,
    a throw-away task journal dir); everything is restored afterwards.

    ``nodelay`` gives the emulator's sockets TCP_NODELAY, as production HTTP servers have. Why: the
    emulator (http.server) writes each reply as two segments, headers then body. With Nagle's
    algorithm on, the body waits for the client's ACK of the headers, and Linux delays that ACK by
    up to 40 ms: an emulator artifact that would be counted as the pack's overhead. The overhead
    bench measures it once both ways (see its second table).
    """
    from emulator import Emulator

    emu = Emulator(api_keys=(API_KEY,), nodelay=nodelay, **config)
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    with tempfile.TemporaryDirectory(prefix="wavespeed-bench-") as journal:
        emu.start(port=0)
        try:
            os.environ.pop("WAVESPEED_CONFIG_FILE", None)
            os.environ.pop("WAVESPEED_JOURNAL_URL", None)  # a bench's journal is its own temp folder
            os.environ.update(
                WAVESPEED_API_KEY=API_KEY, WAVESPEED_BASE_URL=emu.base_url, WAVESPEED_JOURNAL_DIR=journal
            )
            yield emu
        finally:
            emu.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def unique_prompt(tag: str) -> str:
    """A prompt no earlier task used, so no cache or journal can answer it (every task is fresh)."""
    return f"bench {tag} {uuid.uuid4().hex[:12]}: a lighthouse on a cliff at dusk, oil painting"


@dataclass
class ChainRun:
    """One Generate -> Poll Result chain through the node functions (monotonic times)."""

    request_id: str
    start: float
    end: float
    shape: tuple[int, ...]

    @property
    def wall_s(self) -> float:
        return self.end - self.start


async def node_chain(pack: ModuleType, tag: str, *, sync: bool = False, delay_s: float = 0.0) -> ChainRun:
    """Generate -> Poll Result, the work their V3 nodes hand ComfyUI's inputs to; ends with the decoded IMAGE tensor."""
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    seed = uuid.uuid4().int % 2_000_000_000
    start = time.monotonic()
    task, _rid = await call(
        "FluxKontextMaxGenerate", unique_prompt(tag), seed, 3.5, "1:1", sync, force_rerun=True
    )
    images, _urls, rid, _inference_ms, _nsfw = await call(
        "WaveSpeedPollResult", 600, "pass through", task=task
    )
    end = time.monotonic()
    return ChainRun(rid, start, end, tuple(int(d) for d in images.shape))


def warm_up(pack: ModuleType, emu: Emulator) -> None:
    """One short chain per mode: imports torch and the codec, opens pooled connections."""
    saved = emu.inference_s
    emu.configure(inference_s=0.05)
    try:

        async def both() -> None:
            await node_chain(pack, "warm-up")
            await node_chain(pack, "warm-up", sync=True)

        asyncio.run(both())
    finally:
        emu.configure(inference_s=saved)


@dataclass
class TaskTrace:
    """What the emulator saw of one task: request counts and where the time after inference went."""

    requests: int
    polls: int
    downloads: int
    poll_lag_s: float  # completion -> arrival of the poll that saw it (nan in sync mode)
    fetch_s: float  # arrival of the first download -> node returned (download + decode + hops)


def trace_task(emu: Emulator, run: ChainRun, records: Sequence[Any], clock_offset: float) -> TaskTrace:
    """Per-task figures from the emulator's request log (record t is wall time; offset converts)."""
    rid = run.request_id
    mine = [r for r in records if rid in r.path]
    polls = sorted(r.t - clock_offset for r in mine if r.route == "result")
    downloads = sorted(r.t - clock_offset for r in mine if r.route == "download")
    terminal = emu.task(rid).terminal_at
    lag = math.nan
    if terminal is not None:
        seen = [t for t in polls if t >= terminal]
        if seen:
            lag = seen[0] - terminal
    fetch = run.end - downloads[0] if downloads else math.nan
    return TaskTrace(1 + len(mine), len(polls), len(downloads), lag, fetch)


def clock_offset() -> float:
    """time.time() - time.monotonic(): converts emulator record times to the monotonic clock."""
    return time.time() - time.monotonic()
