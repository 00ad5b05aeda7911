"""Time added on top of inference, side by side on one emulator: our shared poller, a naive poller
that keeps WaveSpeed's published pace (a look at once, then one every 2 s), the official ``wavespeed``
SDK 2.0.5 (1 s polling) and ComfyUI's ``poll_op`` (5 s).

Every run draws its tasks' inference times from a seeded random generator, and task i of every
client runs the same time (the emulator's submit is wrapped to set it from the prompt's ``#i``).
Concurrent tasks arrive evenly over ARRIVALS_S (2 s), so 80 submits at once do not measure the
emulator's (in-process) submit queue instead of the pollers:

  4 / 10 / 30 s +-15 %  uniform draws near a few centres, 10 tasks each, all clients at once
  uniform 2-15 s        a busy queue at WaveSpeed: 200 tasks, each client alone in turn; ours knows
                        40 earlier times of the model
  log-normal tail       median 5 s, sigma 0.7 (capped at 45 s): 200 tasks, each client alone in turn;
                        ours knows 40 earlier times
  first 5, new model    5 tasks of 2-15 s one after another, no history (ours learns from each); too
                        few to compare the pollers' time added by (no target), shown for the trend
  300 in flight         300 tasks of 2-15 s submitted at once, no history; each client alone in turn
                        (four clients' hundreds of tasks at once would measure the emulator's load)

On a wide spread a task ends at an unforeseeable moment, so any poller checking every 2 s adds about
1 s on average whatever its phase; which phase happens to suit a few dozen draws is luck, hence the
hundreds of tasks there.

Clients:
  ours        wavespeed.limits.poller.Poller at its default budget (300 requests/s for the account)
  naive 2 s   look at once, then sleep 2 s after every non-terminal reply (the SDK's loop at 2 s)
  sdk 2.0.5   the official SDK's Client.run(poll_interval=1.0), in a subprocess (its package is
              also named ``wavespeed``), unchanged
  poll_op     ComfyUI 0.3.75 comfy_api_nodes/util/client.py poll_op_raw's loop: poll at once, then
              every poll_interval=5.0 s until a terminal status (replicated over our HTTP client)

The emulator does not throttle here (``poll_gap_s=0``): each poller's own pace is measured, and the
checks a throttling server would refuse (two of one task under 2 s apart) are counted.

Per task: added = completed reply in hand - submit start - the task's inference time (so it holds
the submit's round trip); lag = in hand - the emulator's completion; requests = 1 submit + result
polls + 1 download, all counted (the download, one GET per output for every client, is counted
rather than made, so it does not load the shared CPU while others are measured); shortest gap =
the least time between two checks of one task the emulator saw, over the run's tasks.

Run: ``python bench/bench_side_by_side.py [--quick]``. Figures only; nothing here asserts timings.
"""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import API_KEY, BenchResult, Target, fmt_s, md_table, median, percentile  # noqa: E402

NOMINALS_S = (4.0, 10.0, 30.0)
SPREAD = 0.15
TASKS = 10
WIDE_TASKS = 200  # a wide spread: enough draws that no poller's phase is lucky (module docstring)
HISTORY = 40
ARRIVALS_S = 2.0  # a run's tasks arrive over this long (one every 50 ms for 40), as a queue would
POLL_OP_INTERVAL_S = 5.0
NAIVE_INTERVAL_S = 2.0
SDK_INTERVAL_S = 1.0
PACE_S = 2.0  # WaveSpeed's published minimum between two checks of one task
NOISE_S = 0.1  # a median of ~200 draws of a ~uniform 0-2 s wait moves by this much between samples
POLLERS = ("ours", "naive 2 s", "sdk 2.0.5", "poll_op")
MODEL = "wavespeed-ai/flux-kontext-max/text-to-image"


@dataclass(frozen=True)
class Run:
    """One seeded run: how inference times are drawn, how many tasks, what ours knows."""

    name: str
    draw: Callable[[random.Random], float]
    tasks: int
    history: bool
    clients: tuple[str, ...] = POLLERS
    fixed_centre: bool = False  # one of the "x s ±15%" runs: pooled into one target, none of its own
    sequential: bool = False  # each client's tasks one after another (a new model's first tasks)
    alone: bool = False  # each client on the emulator alone, one after another (300 in flight)


def _uniform(lo: float, hi: float) -> Callable[[random.Random], float]:
    return lambda rng: rng.uniform(lo, hi)


def _lognormal(rng: random.Random) -> float:
    return min(45.0, math.exp(rng.gauss(math.log(5.0), 0.7)))


def runs(quick: bool, nominals: tuple[float, ...] | None, tasks: int | None) -> list[Run]:
    if quick:
        n = tasks or 2
        fixed = [
            Run(f"{x:g} s ±15%", _uniform(x * 0.85, x * 1.15), n, True, fixed_centre=True)
            for x in nominals or (0.3,)
        ]
        return [
            *fixed,
            Run("uniform 0.3-1 s", _uniform(0.3, 1.0), n, True),
            Run("first 2", _uniform(0.3, 1.0), 2, False, sequential=True),
        ]
    fixed = [
        Run(f"{x:g} s ±15%", _uniform(x * 0.85, x * 1.15), tasks or TASKS, True, fixed_centre=True)
        for x in nominals or NOMINALS_S
    ]
    return [
        *fixed,
        Run("uniform 2-15 s", _uniform(2.0, 15.0), WIDE_TASKS, True, alone=True),
        Run("log-normal tail", _lognormal, WIDE_TASKS, True, alone=True),
        Run("first 5, new model", _uniform(2.0, 15.0), 5, False, sequential=True),
        Run("300 in flight", _uniform(2.0, 15.0), 300, False, alone=True),
    ]


_SDK_WORKER = r"""
import json, sys, threading, time
from wavespeed import Client  # the official SDK (pip "wavespeed"), not this pack
args = json.loads(sys.argv[1])
client = Client(api_key=args["key"], base_url=args["base_url"])
out = []
lock = threading.Lock()
def one(prompt, seed, delay=0.0):
    time.sleep(delay)
    t0 = time.monotonic()
    result = client.run(args["model"], {"prompt": prompt, "seed": seed}, poll_interval=args["interval"])
    t1 = time.monotonic()
    rid = result["outputs"][0].rsplit("/", 1)[1].split("-", 1)[0]
    with lock:
        out.append({"id": rid, "start": t0, "end": t1})
if args["sequential"]:
    for p, s in args["tasks"]: one(p, s)
else:
    threads = [threading.Thread(target=one, args=(p, s, i * args["stagger"])) for i, (p, s) in enumerate(args["tasks"])]
    for t in threads: t.start()
    for t in threads: t.join()
print(json.dumps(out))
"""


@dataclass
class Done:
    poller: str
    request_id: str
    start: float
    end: float


def _sdk_available() -> bool:
    probe = "import wavespeed, sys; sys.exit(0 if hasattr(wavespeed, 'Client') else 1)"
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, "-I", "-c", probe], cwd=cwd, check=False).returncode == 0


def _draws_by_prompt(emu: Any, times: list[float]) -> None:
    """Task i of every client runs times[i]: the emulator's submit is wrapped to set it from '#i'."""
    original = type(emu).submit.__get__(emu)

    def submit(model: str, body: dict[str, Any], base_url: str) -> Any:
        task = original(model, body, base_url)
        found = re.search(r"#(\d+)\b", str(body.get("prompt", "")))
        if not isinstance(task, int) and found:
            task.inference_s = times[int(found.group(1)) % len(times)]  # before the reply is sent
        return task

    setattr(emu, "submit", submit)  # noqa: B010  (an instance attribute over the class's method)


def _clients(
    emu: Any,
    run: Run,
    clients: tuple[str, ...],
    history: list[float],
    tag: str,
    use_sdk: bool,
    failures: list[str],
) -> list[Done]:
    from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
    from wavespeed_kontext_pack.wavespeed.limits.poller import DEFAULT_BUDGET_RPS, Poller
    from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

    client = WaveSpeedClient(API_KEY, emu.base_url)
    poller = Poller.reading(
        client, budget_rps=DEFAULT_BUDGET_RPS, history=(lambda m: history) if history else None
    )
    done: list[Done] = []
    lock = threading.Lock()
    timeout = 300.0

    stagger = 0.0 if run.sequential else ARRIVALS_S / run.tasks

    def chain(name: str, i: int, wait: Callable[[Any], None]) -> None:
        time.sleep(i * stagger)
        start = time.monotonic()
        try:
            first = client.submit(KontextRequest(prompt=f"{tag} {name} #{i}", seed=i))
            wait(first)
        except Exception as exc:  # counted and named in the notes, never hidden
            with lock:
                failures.append(f"{run.name} {name}: {type(exc).__name__}")
            return
        end = time.monotonic()
        with lock:
            done.append(Done(name, first.id, start, end))

    def ours(first: Any) -> None:
        poller.wait(first.id, model=MODEL, timeout_s=timeout, first=first)

    def every(interval_s: float) -> Callable[[Any], None]:
        # poll_op_raw's loop (and the SDK's): request at once, then sleep after every non-terminal reply.
        def wait(first: Any) -> None:
            while not client.get_result(first.id).is_terminal:
                time.sleep(interval_s)

        return wait

    waits = {"ours": ours, "naive 2 s": every(NAIVE_INTERVAL_S), "poll_op": every(POLL_OP_INTERVAL_S)}
    chains = [(name, waits[name]) for name in clients if name in waits]

    def serial(name: str, fn: Callable[[Any], None]) -> None:
        for i in range(run.tasks):
            chain(name, i, fn)

    if run.sequential:
        threads = [threading.Thread(target=serial, args=(name, fn)) for name, fn in chains]
    else:
        threads = [
            threading.Thread(target=chain, args=(name, i, fn))
            for i in range(run.tasks)
            for name, fn in chains
        ]
    sdk_proc = None
    if use_sdk and "sdk 2.0.5" in clients:
        args = {
            "key": API_KEY,
            "base_url": emu.base_url,
            "model": MODEL,
            "interval": SDK_INTERVAL_S,
            "sequential": run.sequential,
            "stagger": stagger,
            "tasks": [[f"{tag} sdk #{i}", i] for i in range(run.tasks)],
        }
        sdk_proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _SDK_WORKER, json.dumps(args)],
            cwd=tempfile.mkdtemp(prefix="wavespeed-sdk-"),
            stdout=subprocess.PIPE,
            text=True,
        )
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sdk_proc is not None:
        out, _ = sdk_proc.communicate(timeout=timeout * (run.tasks if run.sequential else 1) + 120)
        for item in json.loads(out or "[]"):
            done.append(Done("sdk 2.0.5", item["id"], item["start"], item["end"]))
    poller.close()
    client.close()
    return done


def _measure(emu: Any, done: list[Done], run: Run) -> list[dict[str, Any]]:
    checks: dict[str, list[float]] = {}
    for rec in emu.requests:
        if rec.route == "result":
            checks.setdefault(rec.path.rsplit("/", 2)[-2], []).append(rec.t)
    out = []
    for d in done:
        task = emu.task(d.request_id)
        seen = sorted(checks.get(d.request_id, []))
        gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
        out.append(
            {
                "run": run.name,
                "poller": d.poller,
                "lag": d.end - float(task.terminal_at or d.end),
                "added": d.end - d.start - task.inference_s,
                "requests": 1 + len(seen) + 1,
                "inference": task.inference_s,
                "gap": min(gaps, default=math.inf),
                "too_close": sum(1 for g in gaps if g < PACE_S),
            }
        )
    return out


def _row(run: Run, name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    added = [x["added"] for x in items]
    lags = [x["lag"] for x in items]
    return {
        "run": run.name,
        "poller": name,
        "tasks": len(items),
        "added_median_s": median(added),
        "added_p90_s": percentile(added, 90),
        "lag_median_s": median(lags),
        "lag_p90_s": percentile(lags, 90),
        "requests_per_task": sum(x["requests"] for x in items) / max(1, len(items)),
        "shortest_gap_s": min((x["gap"] for x in items), default=math.inf),
        "too_close": sum(x["too_close"] for x in items),
    }


def _target(name: str, ours: dict[str, Any], naive: dict[str, Any] | None, what: str, slack: float) -> Target:
    """Ours no worse than the naive 2 s poller of the same run (``what``: "added" or "lag", median
    and p90, within ``slack``; requests per task), and never two checks of one task under 2 s."""
    within = f" (+{slack:g} s)" if slack else ""
    text = (
        f"ours, {name}: {what} median and p90 <= the naive 2 s poller's{within}, requests/task <= its, "
        f"gaps >= {PACE_S:g} s"
    )
    med, p90 = f"{what}_median_s", f"{what}_p90_s"
    measured = (
        f"{ours[med]:.2f} / {ours[p90]:.2f} s, {ours['requests_per_task']:.1f} req, "
        f"shortest gap {ours['shortest_gap_s']:.2f} s"
    )
    if naive is None:
        return Target(text, False, measured + " (no naive row)")
    over = [
        f"{stat} by {ours[key] - naive[key] - slack:.3f} s" for stat, key in (("median", med), ("p90", p90))
    ]
    over = [o for o, key in zip(over, (med, p90), strict=True) if ours[key] > naive[key] + slack]
    met = (
        not over
        and ours["requests_per_task"] <= naive["requests_per_task"]
        and ours["shortest_gap_s"] >= PACE_S
    )
    naive_text = f"naive {naive[med]:.2f} / {naive[p90]:.2f} s, {naive['requests_per_task']:.1f} req"
    return Target(text, met, f"{measured}; {naive_text}" + (f"; over on {', '.join(over)}" if over else ""))


def run(
    quick: bool = False,
    *,
    nominals: tuple[float, ...] | None = None,
    tasks: int | None = None,
    sdk: bool | None = None,
) -> BenchResult:
    from wavespeed_kontext_pack.wavespeed.limits.poller import DEFAULT_BUDGET_RPS

    from bench import emulator_env

    t_start = time.monotonic()
    use_sdk = _sdk_available() if sdk is None else sdk
    plan = runs(quick, nominals, tasks)
    rows: list[dict[str, Any]] = []
    table: list[list[Any]] = []
    targets: list[Target] = []
    failures: list[str] = []
    fixed_items: list[dict[str, Any]] = []
    # No throttle: each poller's own pace is what is measured (and its too-close checks counted).
    with emulator_env(inference_s=1.0, seed=11, poll_gap_s=0.0) as emu:
        for k, r in enumerate(plan):
            rng = random.Random(1000 + k)
            times = [r.draw(rng) for _ in range(r.tasks)]
            history = [r.draw(rng) for _ in range(HISTORY)] if r.history else []
            _draws_by_prompt(emu, times)
            groups = [(c,) for c in r.clients] if r.alone else [r.clients]
            items: list[dict[str, Any]] = []
            for group in groups:
                if group == ("sdk 2.0.5",) and not use_sdk:
                    continue
                tag = f"run{k}-{random.getrandbits(24):06x}"
                items += _measure(emu, _clients(emu, r, group, history, tag, use_sdk, failures), r)
                emu.reset()
            if r.fixed_centre:
                fixed_items += [x for x in items if x["poller"] in ("ours", "naive 2 s")]
            by_poller: dict[str, dict[str, Any]] = {}
            for name in r.clients:
                mine = [x for x in items if x["poller"] == name]
                if not mine:
                    continue
                row = by_poller[name] = _row(r, name, mine)
                rows.append(row)
                table.append(
                    [
                        r.name,
                        name,
                        row["tasks"],
                        fmt_s(row["added_median_s"]),
                        fmt_s(row["added_p90_s"]),
                        fmt_s(row["lag_median_s"]),
                        fmt_s(row["lag_p90_s"]),
                        f"{row['requests_per_task']:.1f}",
                        fmt_s(row["shortest_gap_s"]),
                        row["too_close"],
                    ]
                )
            if "ours" in by_poller and not r.fixed_centre and not r.sequential:
                # Clients measured alone ran at different moments of a shared machine: their submit
                # bursts (inside "added") met different loads, so the lag compares the pollers.
                what, slack = ("lag", NOISE_S) if r.alone else ("added", 0.0)
                targets.append(_target(r.name, by_poller["ours"], by_poller.get("naive 2 s"), what, slack))
    if fixed_items:
        pooled = {
            name: _row(plan[0], name, [x for x in fixed_items if x["poller"] == name])
            for name in ("ours", "naive 2 s")
        }
        centres = ", ".join(f"{x:g}" for x in (nominals or ((0.3,) if quick else NOMINALS_S)))
        targets.insert(
            0, _target(f"{centres} s ±15% together", pooled["ours"], pooled["naive 2 s"], "added", 0.0)
        )
    notes = [
        "Inference per task: seeded draws (see the module docstring), task i of every client the same "
        "time; added = completed reply in hand - submit start - inference (it holds the submit's round "
        "trip); lag = in hand - the emulator's completion.",
        "Requests: 1 submit + result checks + 1 download per task, all counted. The SDK and poll_op do "
        "not download; the one GET per output they would need is counted for them too.",
        f"Gaps: the emulator's arrival times of the checks of one task; 'checks < {PACE_S:g} s' counts the "
        "checks a server keeping WaveSpeed's published pace would refuse (the emulator's default, "
        "off here so every poller runs as it would).",
        f"ours: default budget {DEFAULT_BUDGET_RPS:g} requests/s for the account; history = {HISTORY} earlier "
        "inference times of the model (what the journal holds) where the run says so, else none (the "
        "prior plans). Its first check comes within 1 s (a task that fails at once), no two of one "
        "task under 2 s apart, so no task gets more checks than the naive poller's.",
        "Why ours waits about as long as the naive poller: with at least 2 s between checks, a task that "
        "ends at an unforeseeable moment waits about 1 s on average whoever checks; the learned times "
        "save the checks where no task ends (before the spread, and between the first look and it) and "
        "move the checks next to the likely ends on a narrow spread.",
        "The sequential runs of a new model (a handful of tasks) have no target: too few draws to tell "
        "the pollers' time added apart; they show how ours plans from the prior and learns.",
        "Clients run alone (the wide spreads, 300 in flight) are compared by lag, within "
        f"{NOISE_S:g} s: their 'added' also holds a burst of hundreds of submits, which met whatever else "
        "the shared machine did at that moment; and on a wide spread any 2 s poller waits ~1 s on "
        f"average, so which one a sample of 200 draws favours is noise of about {NOISE_S:g} s.",
    ]
    missed = [t for t in targets if not t.met]
    if missed:
        notes.append(
            "Missed: "
            + "; ".join(f"{t.text.split(':')[0]} ({t.measured.rsplit('; ', 1)[-1]})" for t in missed)
            + ". Between two samples of 200 draws a median moves by ~0.1 s and a p90 by ~0.06 s: a "
            "miss smaller than that is the sample's, not the pollers'; on a wide spread no poller "
            "that keeps 2 s between checks can wait less than ~1 s on average."
        )
    if failures:
        notes.append(f"Chains that failed (left out of the figures): {', '.join(sorted(failures))}.")
    if not use_sdk:
        notes.append("The wavespeed SDK 2.0.5 is not installed here: its rows are missing.")
    return BenchResult(
        name="side_by_side",
        title="Time added on top of inference: ours vs a 2 s poller vs the SDK vs ComfyUI's poll_op",
        tables=[
            md_table(
                [
                    "run",
                    "poller",
                    "tasks",
                    "added median s",
                    "added p90 s",
                    "lag median s",
                    "lag p90 s",
                    "requests/task",
                    "shortest gap s",
                    f"checks < {PACE_S:g} s",
                ],
                table,
                align="llrrrrrrrr",
            )
        ],
        rows=rows,
        targets=targets,
        notes=notes,
        seconds=time.monotonic() - t_start,
        quick=quick,
    )


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    print(result.markdown())
