"""A farm's journal in PostgreSQL against the local SQLite journal: the cost per fixed-seed submit,
and 300 tasks in flight across 3 worker processes.

* **Submit overhead**: the journal's work of one fixed-seed submit (the single-flight claim: lookup
  and intent in one transaction; then the durable record of the accepted task, which releases the
  intent), median of repeated calls, and a whole ``submit_task`` against the emulator (its POST
  included), on each backend in the same run. Baseline: SQLite.
* **300 in flight**: 3 worker processes, each submitting 100 fixed-seed tasks at once through
  ``submit_task`` and waiting for all, on an account without limits; the tasks run 8 s so all 300
  are in flight together. Baseline: the same workers, each with its own SQLite journal.

The PostgreSQL server is a throw-away cluster (tests/support/postgres.py: Debian's binaries,
loopback, fsync off, as the tests run it): the figures show the journal's round trips, not disk.
Run: ``python bench/bench_farm.py [--quick]``. Figures only; nothing here asserts timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import API_KEY, REPO_ROOT, BenchResult, Target, md_table, median  # noqa: E402

RUNS = 60
WORKERS = 3
PER_WORKER = 100
INFERENCE_S = 8.0


def _timed_ms(fn: Callable[[int], object], runs: int) -> float:
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000.0)
    return median(times)


def _journal_ms(journal: Any, runs: int) -> float:
    """One fixed-seed submit's journal work: claim (lookup + intent), then record + release."""
    from wavespeed_kontext_pack.wavespeed.journal.singleflight import new_intent

    tag = os.urandom(4).hex()

    def submit(i: int) -> None:
        identity = f"{tag}{i:056x}"
        intent = new_intent("acct", identity, "m", identity, {"prompt": str(i)})
        journal.claim_intent(intent, max_age_s=None, reuse_statuses=("completed", "in_flight"))
        journal.record_submitted(
            f"task{tag}{i}", model="m", params={"prompt": str(i)}, price_usd=0.08, account="acct",
            identity_hash=identity, release_intent=True,
        )  # fmt: skip

    return _timed_ms(submit, runs)


def _submit_ms(env: dict[str, str], runs: int) -> float:
    """A whole fixed-seed ``submit_task`` (async mode) against the emulator, with this journal."""
    from bench import load_pack

    load_pack()
    from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest as request
    from wavespeed_kontext_pack.wavespeed.tasks.context import TaskContext
    from wavespeed_kontext_pack.wavespeed.tasks.paid.submit import reset_session_state, submit_task as submit

    os.environ.update(env)
    reset_session_state()
    context = TaskContext()
    tag = os.urandom(4).hex()
    submit(request(prompt=f"warm {tag}", seed=1), context)  # the pool, the key, the first connection
    return _timed_ms(lambda i: submit(request(prompt=f"overhead {tag} {i}", seed=i), context), runs)


def worker_main(count: int) -> None:
    """One worker process: ``count`` fixed-seed submits at once, then a wait for each; prints JSON."""
    from bench import load_pack

    load_pack()
    from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest as request
    from wavespeed_kontext_pack.wavespeed.tasks.context import TaskContext
    from wavespeed_kontext_pack.wavespeed.tasks.paid.submit import submit_task as submit
    from wavespeed_kontext_pack.wavespeed.tasks.results import wait_for_task as wait

    context = TaskContext()
    tag = os.environ["BENCH_TAG"]
    submit_ms: list[float] = []

    def one(i: int) -> None:
        t0 = time.perf_counter()
        handle = submit(request(prompt=f"farm {tag} {i}", seed=i + 1), context)
        submit_ms.append((time.perf_counter() - t0) * 1000.0)
        wait(handle, context, timeout_s=300)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    print(json.dumps({"wall_s": time.monotonic() - start, "submit_ms": median(submit_ms)}))


def _farm(base_url: str, journal_env: Callable[[int], dict[str, str]], per_worker: int) -> dict[str, Any]:
    """WORKERS processes, each ``per_worker`` tasks; wall until the last is done, and its figures."""
    start = time.monotonic()
    tag = os.urandom(4).hex()
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(per_worker)],
            env={
                **os.environ,
                "WAVESPEED_API_KEY": API_KEY,
                "WAVESPEED_BASE_URL": base_url,
                "BENCH_TAG": f"{tag}-{n}",
                **journal_env(n),
            },
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )  # fmt: skip
        for n in range(WORKERS)
    ]
    outs = [json.loads(p.communicate(timeout=900)[0].strip().splitlines()[-1]) for p in procs]
    return {"wall_s": time.monotonic() - start, "submit_ms": median([o["submit_ms"] for o in outs])}


def run(quick: bool = False, *, runs: int | None = None, per_worker: int | None = None) -> BenchResult:
    from emulator import Emulator
    from tests.support.postgres import pg_bin, postgres_server

    t_start = time.monotonic()
    runs = runs or (10 if quick else RUNS)
    per_worker = per_worker or (5 if quick else PER_WORKER)
    if pg_bin() is None:
        return BenchResult("farm", "Farm journal (PostgreSQL)", [], [], notes=["no PostgreSQL binaries"])
    from wavespeed_kontext_pack.wavespeed.journal.farm.pg_journal import PostgresJournal
    from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal

    saved = dict(os.environ)
    with postgres_server() as server, tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        sqlite_journal, pg_journal = Journal(folder / "one"), PostgresJournal(server.create_database("one"))
        journal_ms = {
            "SQLite": _journal_ms(sqlite_journal, runs),
            "PostgreSQL": _journal_ms(pg_journal, runs),
        }
        sqlite_journal.close()
        pg_journal.close()
        with Emulator(api_keys=(API_KEY,), inference_s=0.05) as emu:
            base = {"WAVESPEED_API_KEY": API_KEY, "WAVESPEED_BASE_URL": emu.base_url}
            submit_ms = {
                "SQLite": _submit_ms({**base, "WAVESPEED_JOURNAL_DIR": str(folder / "two")}, runs),
                "PostgreSQL": _submit_ms(
                    {**base, "WAVESPEED_JOURNAL_URL": server.create_database("two")}, runs
                ),
            }
        os.environ.clear()
        os.environ.update(saved)
        with Emulator(api_keys=(API_KEY,), inference_s=INFERENCE_S if not quick else 0.5) as emu:
            local = _farm(
                emu.base_url, lambda n: {"WAVESPEED_JOURNAL_DIR": str(folder / f"w{n}")}, per_worker
            )
            url = server.create_database("farm")
            farm = _farm(emu.base_url, lambda n: {"WAVESPEED_JOURNAL_URL": url, "WAVESPEED_JOURNAL_DIR": str(folder / f"f{n}")}, per_worker)  # fmt: skip
            submissions = emu.submissions
    rows = [
        {"measure": "journal work of one fixed-seed submit (ms)", **{k.lower(): v for k, v in journal_ms.items()}},
        {"measure": "whole submit_task, POST included (ms)", **{k.lower(): v for k, v in submit_ms.items()}},
        {"measure": f"{WORKERS * per_worker} tasks in flight on {WORKERS} workers: median submit (ms)",
         "sqlite": local["submit_ms"], "postgresql": farm["submit_ms"]},
        {"measure": f"{WORKERS * per_worker} tasks in flight on {WORKERS} workers: wall (s)",
         "sqlite": local["wall_s"], "postgresql": farm["wall_s"]},
    ]  # fmt: skip
    table = md_table(
        ["measure", "SQLite (baseline)", "PostgreSQL", "ratio"],
        [[r["measure"], f"{r['sqlite']:.2f}", f"{r['postgresql']:.2f}", f"{r['postgresql'] / r['sqlite']:.2f}x"] for r in rows],
    )  # fmt: skip
    return BenchResult(
        "farm",
        "Farm journal (PostgreSQL) against the local SQLite journal",
        [table],
        rows,
        targets=[
            Target(
                f"every task of the two {WORKERS * per_worker}-task runs submitted once",
                submissions == 2 * WORKERS * per_worker,
                f"{submissions} submissions",
            )
        ],  # fmt: skip
        notes=[
            f"A whole fixed-seed submit took {submit_ms['PostgreSQL']:.1f} ms with the farm journal and "
            f"{submit_ms['SQLite']:.1f} ms with SQLite: a few loopback round trips per claim and record "
            "against one fsync'd SQLite write (synchronous=FULL).",
            "300 in flight: each worker's submits share its one connection pool (5) and the account's "
            "scheduler; the median submit includes waiting for both.",
            "PostgreSQL here is a throw-away cluster on loopback with fsync off: a networked, durable "
            "server adds its round-trip time and commit latency to each journal write.",
        ],
        seconds=time.monotonic() - t_start,
        quick=quick,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker_main(int(sys.argv[2]))
    else:
        print(run(quick="--quick" in sys.argv).markdown())
