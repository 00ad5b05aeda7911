"""Decode benchmark: ``images_to_tensor`` against a bare Pillow decode, in the same run.

Why: decoding sits on the critical path of every result node, so the codec must cost little more
than the decode itself (target <= 1.2x of ``Image.open(BytesIO(b)).load()``; the aim is <= 1.1x of
the one-pass floor: the bare decode plus one write of a fresh float32 result) and must not hold
extra float copies of an image (target: no more than one float32 copy beyond the result). The
"node path" column is what Poll Result runs: the same decode in its own worker thread under the
node's deadline and Cancel (``decode_before``).

Memory: tracemalloc sees numpy and Python allocations (the result, which numpy allocates, and the
uint8 strips Pillow hands to numpy) but neither torch's allocator nor Pillow's internal C image
buffers. "extra beyond the result" is the traced peak of ``images_to_tensor`` minus the result
(H*W*3*4) minus what the bare decode itself traces (WebP's decoder returns its frame as a Python
``bytes``); the theoretical worst case of the codec is one uint8 copy (H*W*3), shown beside it.

Run: ``python -m bench.bench_decode`` or ``python bench/bench_decode.py`` (prints a markdown table).
Figures only; nothing here asserts timings.
"""

from __future__ import annotations

import gc
import io
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wavespeed_kontext_pack.wavespeed.images.batch_plan import images_to_tensor  # noqa: E402
from wavespeed_kontext_pack.wavespeed.images.decode_guard import decode_before  # noqa: E402

RUNS = 15
SIZES = (1024, 2048)
FORMATS: dict[str, dict[str, Any]] = {
    "PNG": {"compress_level": 6},
    "JPEG": {"quality": 95},
    "WEBP": {"quality": 90},
}
TARGET_RATIO = 1.2


def make_image(size: int, seed: int = 1234) -> np.ndarray:
    """A realistic-ish picture: smooth colour gradients, soft blobs and sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    r = 200 * x + 40 * np.sin(6 * y)
    g = 180 * y + 50 * np.cos(5 * x)
    b = 120 * (1 - x) * (1 - y) + 60 * np.sin(9 * (x + y))
    img = np.stack([r, g, b], axis=-1)
    for _ in range(6):  # a few soft shapes so it is not only a gradient
        cx, cy, rad = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
        mask = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rad**2))
        img += mask[..., None] * rng.uniform(-80, 80, size=3).astype(np.float32)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    out: np.ndarray = np.clip(img, 0, 255).astype(np.uint8)
    return out


def encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **FORMATS[fmt])
    return buf.getvalue()


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def _bare(blob: bytes) -> None:
    Image.open(io.BytesIO(blob)).load()


def _bare_plus_result(blob: bytes, shape: tuple[int, int, int]) -> None:
    """The floor for any decoder returning float32: bare decode + writing a fresh result once."""
    _bare(blob)
    np.empty(shape, np.float32).fill(0.0)


_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-node")  # the node layer's worker pool


def _node_path(blob: bytes) -> None:
    """What Poll Result runs: in a worker of the node layer's pool, the decode in a thread of its
    own, waited for under a deadline and Cancel."""
    decode = partial(images_to_tensor, [blob])
    _WORKER.submit(
        lambda: decode_before(
            decode, deadline=time.monotonic() + 600, cancel=lambda: False, request_id="bench"
        )
    ).result()


def _traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes tracemalloc saw during ``fn`` (numpy/Python only), result freed afterwards."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del out
    finally:
        tracemalloc.stop()
    return peak


def run(runs: int = RUNS) -> list[dict[str, Any]]:
    """Measure every format x size; one dict per row (times in ms, memory in bytes)."""
    rows: list[dict[str, Any]] = []
    for size in SIZES:
        arr = make_image(size)
        for fmt in FORMATS:
            blob = encode(arr, fmt)
            _bare(blob)  # warm-up (codec tables, allocator)
            images_to_tensor([blob])
            # interleave so drifting machine load hits both sides alike
            bare_times, floor_times, ours_times, node_times = [], [], [], []
            for _ in range(runs):
                bare_times.append(_median_ms(partial(_bare, blob), 1))
                floor_times.append(_median_ms(partial(_bare_plus_result, blob, (size, size, 3)), 1))
                ours_times.append(_median_ms(partial(images_to_tensor, [blob]), 1))
                node_times.append(_median_ms(partial(_node_path, blob), 1))
            bare = statistics.median(bare_times)
            ours = statistics.median(ours_times)
            rows.append(
                {
                    "format": fmt,
                    "size": f"{size}x{size}",
                    "bytes": len(blob),
                    "bare_ms": bare,
                    "floor_ms": statistics.median(floor_times),
                    "ours_ms": ours,
                    "node_ms": statistics.median(node_times),
                    "ratio": ours / bare,
                    "traced_bare_bytes": _traced_peak(partial(_bare, blob)),
                    "traced_ours_bytes": _traced_peak(partial(images_to_tensor, [blob])),
                    "result_bytes": size * size * 3 * 4,
                    "uint8_copy_bytes": size * size * 3,
                }
            )
    return rows


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def markdown(rows: list[dict[str, Any]]) -> str:
    """Rows from run() as a markdown table (ratio target <= 1.2x)."""
    lines = [
        f"| format | size | file | bare open+load ms | images_to_tensor ms | ratio (target <= {TARGET_RATIO}x) "
        "| floor: bare + one write of a fresh result (ratio) | ours / floor (aim <= 1.1x) "
        "| node path ms (/ floor) "
        "| result tensor | extra beyond the result: traced / theoretical max (one uint8 copy) "
        "| within target (extra <= one float32 copy) |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---:|---|---|",
    ]
    for r in rows:
        extra = max(0, r["traced_ours_bytes"] - r["result_bytes"] - r["traced_bare_bytes"])
        ok = "yes" if max(extra, r["uint8_copy_bytes"]) <= r["result_bytes"] else "NO"
        lines.append(
            f"| {r['format']} | {r['size']} | {_mb(r['bytes'])} | {r['bare_ms']:.1f} | {r['ours_ms']:.1f} "
            f"| {r['ratio']:.2f}x | {r['floor_ms']:.1f} ({r['floor_ms'] / r['bare_ms']:.2f}x) "
            f"| {r['ours_ms'] / r['floor_ms']:.2f}x | {r['node_ms']:.1f} ({r['node_ms'] / r['floor_ms']:.2f}x) "
            f"| {_mb(r['result_bytes'])} | {_mb(extra)} / {_mb(r['uint8_copy_bytes'])} "
            f"| {ok} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import torch

    print(f"torch threads: {torch.get_num_threads()}, median of {RUNS} interleaved runs\n")
    print(markdown(run()))
