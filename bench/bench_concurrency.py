"""Concurrency: N independent Generate -> Poll Result chains at once, wall time vs one chain.

Part A drives the node functions directly with asyncio.gather (as ComfyUI awaits independent async
nodes), for 1, 4, 8 and 16 chains of INFERENCE_S each; the levels are interleaved within every
repeat so drifting machine load hits them alike, and the ratio is the median over repeats of
wall(N) / wall(1) taken in the same repeat. Target: 8 chains <= 1.3x of one.

Phase: the poll that sees completion depends on where the inference time falls in the poll plan
(see bench_overhead.py), so each repeat shifts the inference time by an offset spread evenly over
+-PHASE_SPREAD_S/2, the same offset for every level of that repeat.

Part B runs one prompt with 1 chain and one with 8 chains (Generate -> Poll Result -> PreviewImage
each) through a real headless ComfyUI started by scripts/comfy_harness.py, pointed at the emulator;
wall time is the harness's (queue -> execution_success -> history). Skipped with a note when
ComfyUI is not installed (scripts/bootstrap.sh installs it) or in --quick mode.

Run: ``python bench/bench_concurrency.py [--quick]``. Figures only; nothing here asserts timings.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    API_KEY,
    BenchResult,
    ChainRun,
    Target,
    emulator_env,
    fmt_s,
    load_pack,
    md_table,
    median,
    node_chain,
    unique_prompt,
    warm_up,
)

LEVELS = (1, 4, 8, 16)
INFERENCE_S = 2.0
REPEATS = 4
PHASE_SPREAD_S = 0.3
COMFY_LEVELS = (1, 8)
COMFY_REPEATS = 3
TARGET_LEVEL = 8
TARGET_RATIO = 1.3


def run(
    quick: bool = False,
    *,
    levels: tuple[int, ...] | None = None,
    inference_s: float | None = None,
    repeats: int | None = None,
    comfy: bool | None = None,
    comfy_repeats: int | None = None,
) -> BenchResult:
    t_start = time.monotonic()
    levels = levels or ((1, 2) if quick else LEVELS)
    inference_s = inference_s if inference_s is not None else (0.3 if quick else INFERENCE_S)
    repeats = repeats or (1 if quick else REPEATS)
    comfy = (not quick) if comfy is None else comfy
    comfy_repeats = comfy_repeats or (1 if quick else COMFY_REPEATS)

    rows = _asyncio_rows(levels, inference_s, repeats)
    tables = [
        md_table(
            [
                "chains (asyncio, node functions)",
                "wall median s",
                "ratio vs 1",
                "per-chain overhead median / max s",
                "emulator submissions",
            ],
            [
                [
                    r["chains"],
                    fmt_s(r["wall_median_s"]),
                    f"{r['ratio']:.2f}x",
                    f"{fmt_s(r['chain_overhead_median_s'])} / {fmt_s(r['chain_overhead_max_s'])}",
                    r["submissions"],
                ]
                for r in rows
            ],
        )
    ]
    notes = [
        f"Inference {inference_s:g} s per task (each repeat shifted by an offset within +-"
        f"{PHASE_SPREAD_S / 2:g} s, the same for all levels); {repeats} repeats per level, levels "
        "interleaved; ratio = median over repeats of wall(N) / wall(1) from the same repeat.",
        "Every chain is a fresh task (distinct prompt and seed, force_rerun) ending with the decoded "
        "1024x1024 IMAGE.",
    ]
    targets: list[Target] = []
    by_n = {r["chains"]: r for r in rows}
    r = by_n.get(TARGET_LEVEL) or rows[-1]  # a smaller run checks its largest level
    targets.append(
        Target(f"{r['chains']} chains <= {TARGET_RATIO}x of 1 (asyncio)", r["ratio"] <= TARGET_RATIO)
    )
    targets[-1].measured = f"{r['ratio']:.2f}x"
    comfy_rows: list[dict[str, Any]] = []
    if comfy:
        comfy_rows, comfy_note = _comfy_rows(COMFY_LEVELS, inference_s, comfy_repeats)
        notes.append(comfy_note)
    else:
        notes.append("Real-ComfyUI part skipped (--quick).")
    if comfy_rows:
        tables.append(
            md_table(
                ["chains in one ComfyUI prompt", "wall median s", "ratio vs 1", "runs", "images"],
                [
                    [
                        r["chains"],
                        fmt_s(r["wall_median_s"]),
                        f"{r['ratio']:.2f}x",
                        r["repeats"],
                        r["images"],
                    ]
                    for r in comfy_rows
                ],
            )
        )
        top = comfy_rows[-1]
        targets.append(
            Target(
                f"{top['chains']} chains <= {TARGET_RATIO}x of 1 (real ComfyUI prompt)",
                top["ratio"] <= TARGET_RATIO,
                f"{top['ratio']:.2f}x",
            )
        )
    for t in targets:
        if not t.met:
            notes.append(_miss_note(rows, comfy_rows))
            break
    return BenchResult(
        name="concurrency",
        title="2. Concurrency (independent Generate -> Poll chains)",
        tables=tables,
        rows=rows + comfy_rows,
        targets=targets,
        notes=notes,
        seconds=time.monotonic() - t_start,
        quick=quick,
    )


def _phases(inference_s: float, repeats: int) -> list[float]:
    """Inference time per repeat: nominal plus offsets spread evenly over one poll period."""
    return [max(0.0, inference_s + PHASE_SPREAD_S * ((i + 0.5) / repeats - 0.5)) for i in range(repeats)]


def _asyncio_rows(levels: tuple[int, ...], inference_s: float, repeats: int) -> list[dict[str, Any]]:
    pack = load_pack()
    walls: dict[int, list[float]] = {n: [] for n in levels}
    overheads: dict[int, list[float]] = {n: [] for n in levels}
    subs: dict[int, int] = dict.fromkeys(levels, 0)
    with emulator_env(inference_s=inference_s) as emu:
        warm_up(pack, emu)
        for length in _phases(inference_s, repeats):
            emu.configure(inference_s=length)
            for n in levels:
                before = emu.submissions
                start = time.monotonic()
                runs = asyncio.run(_gather(pack, n))
                walls[n].append(time.monotonic() - start)
                overheads[n] += [r.wall_s - length for r in runs]
                subs[n] += emu.submissions - before
    base = walls[levels[0]]
    return [
        {
            "part": "asyncio",
            "chains": n,
            "wall_median_s": median(walls[n]),
            "ratio": median([w / b for w, b in zip(walls[n], base, strict=True)]),
            "chain_overhead_median_s": median(overheads[n]),
            "chain_overhead_max_s": max(overheads[n]),
            "submissions": subs[n],
            "repeats": repeats,
        }
        for n in levels
    ]


async def _gather(pack: Any, n: int) -> list[ChainRun]:
    return list(await asyncio.gather(*(node_chain(pack, f"concurrency {n}") for _ in range(n))))


def _comfy_prompt(n: int) -> dict[str, Any]:
    prompt: dict[str, Any] = {}
    for i in range(n):
        g, p, v = f"{i}g", f"{i}p", f"{i}v"
        prompt[g] = {
            "class_type": "FluxKontextMaxGenerate",
            "inputs": {
                "prompt": unique_prompt(f"comfy {n}.{i}"),
                "seed": uuid.uuid4().int % 2_000_000_000,
                "guidance_scale": 3.5,
                "aspect_ratio": "1:1",
                "sync_mode": False,
                "force_rerun": True,
            },
        }
        prompt[p] = {
            "class_type": "WaveSpeedPollResult",
            "inputs": {"task": [g, 0], "timeout_s": 120, "nsfw_policy": "pass through", "request_id": ""},
        }
        prompt[v] = {"class_type": "PreviewImage", "inputs": {"images": [p, 0]}}
    return prompt


def _comfy_rows(
    levels: tuple[int, ...], inference_s: float, repeats: int
) -> tuple[list[dict[str, Any]], str]:
    from scripts.comfy_harness import ComfyNotInstalledError, ComfyServer, ensure_installed, run_prompt

    try:
        ensure_installed()
    except ComfyNotInstalledError as exc:
        return [], f"Real-ComfyUI part skipped: {exc}"
    walls: dict[int, list[float]] = {n: [] for n in levels}
    images: dict[int, int] = dict.fromkeys(levels, 0)
    with emulator_env(inference_s=inference_s) as emu:
        server = ComfyServer(
            env={"WAVESPEED_BASE_URL": emu.base_url, "WAVESPEED_API_KEY": API_KEY}, cache_none=True
        )
        with server:
            emu.configure(inference_s=0.05)
            warm = run_prompt(server, _comfy_prompt(1), timeout=120)  # loads torch paths, the codec
            if not warm.ok:
                return [], f"Real-ComfyUI part failed at warm-up: {warm.error_line()}"
            for length in _phases(inference_s, repeats):
                emu.configure(inference_s=length)
                for n in levels:
                    result = run_prompt(server, _comfy_prompt(n), timeout=180)
                    if not result.ok:
                        return [], f"Real-ComfyUI part failed ({n} chains): {result.error_line()}"
                    walls[n].append(result.wall_s)
                    images[n] = len(result.images) + len(result.temp_images)
            startup = server.startup_s
    base = walls[levels[0]]
    rows = [
        {
            "part": "comfyui",
            "chains": n,
            "wall_median_s": median(walls[n]),
            "ratio": median([w / b for w, b in zip(walls[n], base, strict=True)]),
            "repeats": repeats,
            "images": images[n],
        }
        for n in levels
    ]
    note = (
        f"Real ComfyUI: {repeats} prompts per level (interleaved) after one warm-up prompt; each chain "
        "ends in PreviewImage; wall = queue -> execution_success -> /history as seen by the harness; "
        f"inference {inference_s:g} s; server start-up {startup:.1f} s (not counted)."
    )
    return rows, note


def _miss_note(rows: list[dict[str, Any]], comfy_rows: list[dict[str, Any]]) -> str:
    worst = max(rows, key=lambda r: r["ratio"])
    return (
        f"Why missed: with {worst['chains']} chains the per-chain overhead median rises to "
        f"{worst['chain_overhead_median_s']:.3f} s (max {worst['chain_overhead_max_s']:.3f} s): all "
        "chains finish together, so their downloads and decodes queue for the 2 cores."
    )


def main(argv: list[str] | None = None) -> None:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    print(run(quick=quick).markdown())


if __name__ == "__main__":
    main()
