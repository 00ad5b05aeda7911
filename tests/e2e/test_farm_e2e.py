"""A farm in real ComfyUI processes: two ComfyUI servers as two machines with no folder in common (each
its own WAVESPEED_JOURNAL_DIR), sharing one PostgreSQL journal (WAVESPEED_JOURNAL_URL) and one spend cap
(WAVESPEED_FARM_BUDGET_USD), as a farm of workers on one account runs them.

The same fixed-seed prompt queued on both at the same moment is paid once, and both get its image; once
the farm's budget is spent, a new prompt on the other worker is refused in one line, before anything is
sent. The unit-level farm tests (tests/wavespeed/journal/test_farm_*.py) run the pack in plain
processes; these run it inside ComfyUI, through its queue, as a farm does."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import Emulator
from scripts.comfy_harness import ComfyServer, PromptResult, run_prompt
from tests.support.graphs import generate_chain
from tests.support.postgres import PostgresServer

from .conftest import E2E_API_KEY, running

pytestmark = pytest.mark.timeout(400)

PRICE = 0.08  # FLUX.1 Kontext [max], per image
BUDGET = 2 * PRICE  # the farm may pay for two tasks


@pytest.fixture(scope="module")
def farm_url(postgres: PostgresServer) -> str:
    return postgres.create_database(f"farm_{secrets.token_hex(4)}")


@pytest.fixture(scope="module")
def workers(
    comfy_installed: Path, e2e_emulator: Emulator, farm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ComfyServer]]:
    servers = [
        ComfyServer(
            env={
                "WAVESPEED_BASE_URL": e2e_emulator.base_url,
                "WAVESPEED_API_KEY": E2E_API_KEY,
                "WAVESPEED_JOURNAL_DIR": str(tmp_path_factory.mktemp(f"worker-{i}-journal")),
                "WAVESPEED_JOURNAL_URL": farm_url,
                "WAVESPEED_FARM_BUDGET_USD": f"{BUDGET:.2f}",
            },
            cache_none=True,
        )
        for i in range(2)
    ]
    with running(servers):
        yield servers


def _at_once(workers: list[ComfyServer], prompt: dict[str, object]) -> list[PromptResult | BaseException]:
    results: list[PromptResult | BaseException] = [RuntimeError("not run")] * len(workers)
    go = threading.Barrier(len(workers))

    def queue(i: int) -> None:
        go.wait()
        try:
            results[i] = run_prompt(workers[i], prompt)
        except BaseException as exc:  # reported by the caller's asserts
            results[i] = exc

    threads = [threading.Thread(target=queue, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(200)
    return results


def test_a_farm_pays_once_for_one_prompt_and_refuses_past_its_budget(
    workers: list[ComfyServer], wavespeed_emulator: Emulator, farm_url: str
) -> None:
    wavespeed_emulator.configure(inference_s=2.0)
    same = generate_chain("f", "e2e farm: one prompt on two workers", seed=303, sync_mode=True)
    results = _at_once(workers, same)
    done = [r for r in results if isinstance(r, PromptResult)]
    assert len(done) == 2 and all(r.ok for r in done), results
    assert all(len(r.images) == 1 for r in done)
    assert done[0].images[0].read_bytes() == done[1].images[0].read_bytes()  # the one task's image
    assert wavespeed_emulator.submissions == 1  # one task paid: $0.08 of the farm's $0.16

    second = run_prompt(workers[0], generate_chain("g", "e2e farm: a second prompt", seed=304))
    assert second.ok, second.error_line()
    assert wavespeed_emulator.submissions == 2  # $0.16: the budget is spent

    refused = run_prompt(workers[1], generate_chain("h", "e2e farm: one too many", seed=305))
    line = refused.error_line()
    assert not refused.ok and "farm budget" in line and "nothing was submitted" in line, line
    assert wavespeed_emulator.submissions == 2  # nothing sent past the budget
    password = farm_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in line
