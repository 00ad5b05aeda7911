"""Load: TASKS tasks through one WaveSpeedClient with injected transient faults.

A thread pool of THREADS workers runs ``client.submit(request)``, a wait through one Poller for the
account (wavespeed/limits/poller.py, as the nodes wait; it knows HISTORY earlier inference times of
the model, as the journal gives the nodes for a model in use) and ``client.download(output)`` for each
task against the emulator, while a fault injector keeps about FAULT_RATE of all requests faulty: it
arms one rule at a time (the emulator fires it on the next matching request) whenever the faults
fired so far fall below FAULT_RATE x the client's request count. The mix (uniform):

  result    503 | 429 with Retry-After 0 or 1 | connection reset
  download  500 | truncated body (full Content-Length, half the bytes)
  submit    WaveSpeed's 429, as HTTP 429 with Retry-After 0 or 1 | inside a 200 envelope (its own
            refusal: the only submit failure the client may retry without risking a second charge;
            resets and 5xx on submit, never re-sent, are deliberately absent)

Checks (reported, not asserted): every task completes, and the emulator saw exactly TASKS accepted
submissions (0 duplicates). Overhead per task = wall time of submit + wait + download minus the task's
inference time; p50/p99 over all tasks and over the tasks whose polls/downloads were hit.

Run: ``python bench/bench_load.py [--quick]``. Figures only; nothing here asserts timings.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    API_KEY,
    BenchResult,
    Target,
    emulator_env,
    fmt_s,
    md_table,
    percentile,
    unique_prompt,
)

TASKS = 200
THREADS = 16
INFERENCE_S = 1.0
FAULT_RATE = 0.05
HISTORY = 40  # earlier inference times the poller knows (what the journal holds for a used model)
# (route, kind, status, retry_after choices)
FAULT_MIX: tuple[tuple[str, str, int | None, tuple[float, ...] | None], ...] = (
    ("result", "status", 503, None),
    ("result", "status", 429, (0.0, 1.0)),
    ("result", "reset", None, None),
    ("download", "status", 500, None),
    ("download", "truncate", None, None),
    ("submit", "status", 429, (0.0, 1.0)),
    ("submit", "envelope_error", 429, None),
)


@dataclass
class TaskOutcome:
    index: int
    request_id: str
    start: float
    end: float
    nbytes: int
    error: str = ""


class FaultInjector(threading.Thread):
    """Keeps faults fired close to rate x requests sent, one armed rule at a time."""

    def __init__(self, emu: Any, client: Any, rate: float, seed: int = 1234) -> None:
        super().__init__(name="bench-fault-injector", daemon=True)
        self.emu, self.client, self.rate = emu, client, rate
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.injected: Counter[str] = Counter()
        self.last = ""

    def run(self) -> None:
        while not self.stop_event.wait(0.005):
            if self.emu.pending_faults:
                continue
            if sum(self.injected.values()) >= self.rate * self.client.request_count:
                continue
            route, kind, status, retry_after = self.rng.choice(FAULT_MIX)
            ra = self.rng.choice(retry_after) if retry_after else None
            self.emu.inject(route, kind, status=status, retry_after=ra)
            self.last = f"{route} {kind}" + (f" {status}" if status else "")
            self.injected[self.last] += 1

    def fired(self) -> Counter[str]:
        """Faults that fired (the one still armed at the end, if any, did not)."""
        out = Counter(self.injected)
        if self.emu.pending_faults and self.last:
            out[self.last] -= 1
        return +out


def run(
    quick: bool = False,
    *,
    tasks: int | None = None,
    threads: int | None = None,
    inference_s: float | None = None,
    fault_rate: float | None = None,
) -> BenchResult:
    from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
    from wavespeed_kontext_pack.wavespeed.api.models import model_for
    from wavespeed_kontext_pack.wavespeed.limits.poller import Poller
    from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

    t_start = time.monotonic()
    tasks = tasks or (12 if quick else TASKS)
    threads = threads or (4 if quick else THREADS)
    inference_s = inference_s if inference_s is not None else (0.2 if quick else INFERENCE_S)
    fault_rate = fault_rate if fault_rate is not None else (0.2 if quick else FAULT_RATE)

    capture = RetryCapture()
    with emulator_env(inference_s=inference_s) as emu, capture.installed():
        client = WaveSpeedClient(API_KEY, emu.base_url)
        poller = Poller.reading(client, history=lambda model: [inference_s] * HISTORY)

        def one(i: int) -> TaskOutcome:
            capture.local.task = i
            request = KontextRequest(
                prompt=unique_prompt(f"load {i}"),
                model=model_for("t2i").id,
                seed=uuid.uuid4().int % 2_000_000_000,
                guidance_scale=3.5,
                aspect_ratio="1:1",
            )
            start = time.monotonic()
            try:
                first = client.submit(request)
                prediction = poller.wait(first.id, model=request.model, timeout_s=300, first=first)
                nbytes = sum(
                    len(client.download(o, deadline=time.monotonic() + 120)) for o in prediction.outputs
                )
            except Exception as exc:  # counted and reported: a load run must not stop at one failure
                return TaskOutcome(i, "", start, time.monotonic(), 0, f"{type(exc).__name__}: {exc}")
            finally:
                capture.local.task = None
            return TaskOutcome(i, prediction.id, start, time.monotonic(), nbytes)

        injector = FaultInjector(emu, client, fault_rate)
        injector.start()
        wall0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-load") as pool:
            outcomes = list(pool.map(one, range(tasks)))
        wall = time.monotonic() - wall0
        injector.stop_event.set()
        injector.join(timeout=5)
        poller.close()
        fired = injector.fired()
        records = emu.requests
        submissions = emu.submissions
        sent = client.request_count
        done = [o for o in outcomes if not o.error]
        hit = _tasks_hit(records) | {o.request_id for o in done if capture.retries[o.index]}
        overheads = {o.request_id: o.end - o.start - emu.task(o.request_id).inference_s for o in done}
        client.close()

    all_over = list(overheads.values())
    hit_over = [v for k, v in overheads.items() if k in hit]
    clean_over = [v for k, v in overheads.items() if k not in hit]
    n_fired = sum(fired.values())
    failures = [o.error for o in outcomes if o.error]
    row = {
        "tasks": tasks,
        "threads": threads,
        "inference_s": inference_s,
        "completed": len(done),
        "failed": len(failures),
        "submissions": submissions,
        "duplicates": submissions - len(done),
        "requests": sent,
        "faults_fired": n_fired,
        "fault_share": n_fired / max(1, sent),
        "tasks_hit": len(hit),
        "wall_s": wall,
        "p50_s": percentile(all_over, 50),
        "p99_s": percentile(all_over, 99),
        "hit_p50_s": percentile(hit_over, 50),
        "hit_p99_s": percentile(hit_over, 99),
        "clean_p50_s": percentile(clean_over, 50),
        "clean_p99_s": percentile(clean_over, 99),
    }
    summary = md_table(
        [
            "tasks x threads",
            "completed",
            "accepted submissions (duplicates)",
            "requests (per task)",
            "faults fired (share of requests)",
            "overhead p50 / p99 s, all",
            "p50 / p99 s, tasks hit by a fault",
            "p50 / p99 s, others",
            "wall s",
        ],
        [
            [
                f"{tasks} x {threads}",
                f"{len(done)}/{tasks}",
                f"{submissions} ({row['duplicates']})",
                f"{sent} ({sent / tasks:.1f})",
                f"{n_fired} ({row['fault_share'] * 100:.1f}%)",
                f"{fmt_s(row['p50_s'])} / {fmt_s(row['p99_s'])}",
                f"{fmt_s(row['hit_p50_s'])} / {fmt_s(row['hit_p99_s'])} ({len(hit_over)} tasks)",
                f"{fmt_s(row['clean_p50_s'])} / {fmt_s(row['clean_p99_s'])}",
                f"{wall:.1f}",
            ]
        ],
        align="r" * 9,
    )
    mix = md_table(
        ["fault (route kind status)", "fired"],
        [[k, v] for k, v in sorted(fired.items())],
        align="lr",
    )
    notes = [
        f"One WaveSpeedClient shared by {threads} threads; each task = submit + a wait through one "
        f"Poller for the account (its polls run on the poller's threads; it knows {HISTORY} earlier "
        "inference times of the model, as the journal gives the nodes) + download of its output (no "
        f"decode); inference {inference_s:g} s per task; the emulator (rendering every image) shares "
        "the same cores.",
        "Overhead = task wall time minus its inference time; retries back off 0.125-0.25 s (RetryPolicy) "
        "or for Retry-After (0 or 1 s), which is what lifts p99 for the tasks that were hit. A task counts "
        "as hit if it logged a submit retry (attributed per thread), a poll of it got a fault, or its "
        "download failed or was repeated (emulator log).",
    ]
    if failures:
        notes.append(f"Failures ({len(failures)}): " + "; ".join(sorted(set(failures))[:5]))
    return BenchResult(
        name="load",
        title=f"5. Load: {tasks} tasks through one client, {fault_rate * 100:g}% transient faults",
        tables=[summary, mix],
        rows=[row],
        targets=[
            Target("all tasks complete", len(done) == tasks, f"{len(done)}/{tasks}"),
            Target(
                "0 duplicate submissions (emulator.submissions == tasks)",
                submissions == tasks,
                f"{submissions} accepted",
            ),
        ],
        notes=notes,
        seconds=time.monotonic() - t_start,
        quick=quick,
    )


class RetryCapture(logging.Handler):
    """Counts the client's retry warnings per task (a submit's or download's warning is logged in the
    task's own thread; a poll's in the poller's, found by _tasks_hit instead) rather than printing
    hundreds of them; attributes submit retries, which carry no task id."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()
        self.retries: Counter[int] = Counter()
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        task = getattr(self.local, "task", None)
        if task is not None:
            with self._lock:
                self.retries[task] += 1

    @contextlib.contextmanager
    def installed(self) -> Any:
        logger = logging.getLogger("wavespeed")
        saved = logger.propagate
        logger.addHandler(self)
        logger.propagate = False
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.propagate = saved


def _tasks_hit(records: list[Any]) -> set[str]:
    """Task ids whose result polls or downloads got a fault (non-200, a reset, or a re-download)."""
    hit: set[str] = set()
    downloads: Counter[str] = Counter()
    for r in records:
        if r.route not in ("result", "download"):
            continue
        rid = _task_id(r.path)
        if not rid:
            continue
        if r.status != 200:
            hit.add(rid)
        if r.route == "download":
            downloads[rid] += 1
    hit.update(k for k, v in downloads.items() if v > 1)
    return hit


def _task_id(path: str) -> str:
    if "/predictions/" in path:
        return path.split("/predictions/", 1)[1].split("/", 1)[0]
    name = path.rsplit("/", 1)[-1]
    return name.split("-", 1)[0] if "-" in name else ""


def main(argv: list[str] | None = None) -> None:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    print(run(quick=quick).markdown())


if __name__ == "__main__":
    main()
