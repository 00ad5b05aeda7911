"""Smoke test of bench/: every part runs with tiny parameters and returns well-formed tables.

Structure only (tables have rows, figures are finite): benchmarks report timings, tests never
assert them. The real-ComfyUI half of the concurrency bench is left out here (tests/e2e covers
the server); bench/run.py runs it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest

from bench import (
    BenchResult,
    bench_codec,
    bench_concurrency,
    bench_imports,
    bench_journal,
    bench_load,
    bench_overhead,
    run as bench_run,
)


def _check(result: BenchResult, *, nan_ok: Iterable[str] = ()) -> None:
    assert result.rows, result.name
    assert result.tables and result.targets
    for table in result.tables:
        lines = table.splitlines()
        assert len(lines) >= 3, table  # header, separator, at least one row
        assert all(line.startswith("| ") and line.endswith(" |") for line in (lines[0], *lines[2:]))
        assert set(lines[1]) <= set("|-:")
        widths = {line.count(" | ") for line in (lines[0], *lines[2:])}
        assert len(widths) == 1, f"ragged table in {result.name}"
    allowed = set(nan_ok)
    for row in result.rows:
        for key, value in row.items():
            if isinstance(value, float) and not (key in allowed and math.isnan(value)):
                assert math.isfinite(value), (result.name, key, value)
    text = result.markdown()
    assert text.startswith("## ") and all(t.text in text for t in result.targets)
    assert math.isfinite(result.seconds)


@pytest.fixture(scope="module")
def results() -> dict[str, BenchResult]:
    """Each part once with tiny parameters (shared by the tests below to stay fast)."""
    return {
        "overhead": bench_overhead.run(quick=True, lengths=(0.05,), repeats=1, nagle_runs=1),
        "concurrency": bench_concurrency.run(
            quick=True, levels=(1, 2), inference_s=0.05, repeats=1, comfy=False
        ),
        "decode": bench_codec.run(quick=True, sizes=(64,), runs=1, floor_runs=1),
        "imports": bench_imports.run(quick=True, runs=1, importtime_runs=1, lengths=(0.05,)),
        "load": bench_load.run(quick=True, tasks=6, threads=3, inference_s=0.05, fault_rate=0.2),
        "journal": bench_journal.run(quick=True, sizes=(200,)),
    }


def test_overhead_rows_cover_both_modes(results: dict[str, BenchResult]) -> None:
    result = results["overhead"]
    _check(result, nan_ok={"poll_lag_median_s"})
    main = [r for r in result.rows if "how" in r]
    assert {r["mode"] for r in main} == {"poll", "sync"}
    assert all(r["requests_per_task"] >= 2 for r in main)
    assert all(r["shape"] == "1x1024x1024x3" for r in main)
    assert len(result.tables) == 2  # the emulator's Nagle comparison


def test_concurrency_rows_have_one_per_level(results: dict[str, BenchResult]) -> None:
    result = results["concurrency"]
    _check(result)
    assert [r["chains"] for r in result.rows] == [1, 2]
    assert [r["submissions"] for r in result.rows] == [1, 2]  # every chain a fresh task


def test_decode_includes_bench_decode_table(results: dict[str, BenchResult]) -> None:
    result = results["decode"]
    _check(result)
    assert {r["format"] for r in result.rows} == {"PNG", "JPEG", "WEBP"}
    assert len(result.tables) == 2 and result.tables[0].startswith("| format | size |")
    assert sum("one_pass_ms" in r for r in result.rows) == 3


def test_imports_has_three_variants_and_request_counts(results: dict[str, BenchResult]) -> None:
    result = results["imports"]
    _check(result)
    variants = [r for r in result.rows if "variant" in r]
    assert {r["preload"] for r in variants} == {"torch", "none", "stdlib"}
    assert all(r["entrypoint"] for r in variants)
    requests = [r for r in result.rows if "requests_per_task" in r]
    assert {r["mode"] for r in requests} == {"poll", "sync"}


def test_load_completes_every_task_once(results: dict[str, BenchResult]) -> None:
    result = results["load"]
    _check(result, nan_ok={"hit_p50_s", "hit_p99_s", "clean_p50_s", "clean_p99_s"})
    (row,) = result.rows
    assert row["completed"] == row["tasks"] == row["submissions"] == 6


def test_journal_compares_sqlite_with_the_old_json_journal(results: dict[str, BenchResult]) -> None:
    result = results["journal"]
    _check(result)
    (row,) = result.rows
    assert row["records"] == 200 and row["old_miss_ms"] > 0 and row["record_ms"] > 0


def test_results_markdown_and_cli(
    results: dict[str, BenchResult], capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    text = bench_run.render(list(results.values()), 1.0, True, ["--quick"])
    assert text.startswith("# Benchmarks") and "| cpus |" in text
    for name in results:  # side_by_side and scale: tests/tooling/test_bench_limits_smoke.py
        assert f"| {name} |" in text
    assert bench_run.main(["--quick", "--only", "decode", "--no-write"]) == 0
    assert "## 3. Decode" in capsys.readouterr().out
