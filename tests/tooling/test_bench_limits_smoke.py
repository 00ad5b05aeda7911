"""Smoke test of the account-limits benches: they run with tiny parameters and return well-formed
tables (structure only; benchmarks report timings, tests never assert them)."""

from __future__ import annotations

import math

from bench import bench_farm, bench_scale, bench_side_by_side, run as bench_run


def test_side_by_side_has_a_row_per_poller() -> None:
    result = bench_side_by_side.run(quick=True, nominals=(0.3,), tasks=2)
    assert {r["poller"] for r in result.rows} == set(bench_side_by_side.POLLERS)
    assert all(math.isfinite(r["added_median_s"]) and r["requests_per_task"] >= 3 for r in result.rows)
    assert {r["run"] for r in result.rows} == {"0.3 s ±15%", "uniform 0.3-1 s", "first 2"}
    assert len(result.targets) == 2 and result.tables[0].startswith("| run | poller |")  # none for "first 2"
    # the pace is behaviour, not timing: ours and the naive poller never check a task twice within 2 s
    assert all(r["too_close"] == 0 for r in result.rows if r["poller"] in ("ours", "naive 2 s"))


def test_scale_reports_silver_and_bronze() -> None:
    result = bench_scale.run(quick=True, sizes=(4,), budgets=(50.0,), minute_s=1.0, memory_images=2)
    silver, bronze, memory = result.rows[0], result.rows[-3], result.rows[-1]
    assert silver["tasks"] == 4 and silver["peak_rss_mb"] > 0 and silver["requests_per_s"] > 0
    assert bronze["submissions"] == bronze["tasks"] == 6  # one accepted submit per image
    assert len(result.tables) == 3 and memory["images"] == 2 and memory["shape"] == "2x1024x1024x3"


def test_farm_compares_postgresql_with_sqlite() -> None:
    result = bench_farm.run(quick=True, runs=2, per_worker=2)
    if not result.rows:  # no PostgreSQL binaries here (CI has them): the note says so
        assert result.notes == ["no PostgreSQL binaries"]
        return
    assert len(result.rows) == 4 and all(
        math.isfinite(r["sqlite"]) and math.isfinite(r["postgresql"]) for r in result.rows
    )
    assert result.targets[0].met and result.tables[0].startswith("| measure | SQLite (baseline) |")


def test_run_py_knows_the_new_parts() -> None:
    assert {"side_by_side", "scale", "farm"} <= set(bench_run.PARTS) and set(bench_run.MODULES) == set(
        bench_run.PARTS
    )
