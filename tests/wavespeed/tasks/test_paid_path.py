"""The paid path (wavespeed/tasks/paid/submit.py): one call per submit, Batch a loop over it, Cancel decided once.

(d) any batch and any Cancel moment: the emulator accepts no submit after the Cancel (issue 17 case 3:
a Cancel freed the Batch's in-flight gate and queued tasks were then submitted and paid). The order
is the emulator's own: its submit handler records each accepted task and presses Cancel in the same
event list, and the account's scheduler admits one POST at a time, so "after" is exact, not timed.
(e) any output size and task count: the batch tensor asked for stays within its budget, or a typed
error naming the paid tasks comes before any allocation (case 5)."""

from __future__ import annotations

import ast
import asyncio
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from emulator import Emulator
from scripts import layout
from scripts.pack_loader import REPO_ROOT
from tests.support.node_calls import call, image
from tests.support.submit_log import cancel_after_submits


def _scheduler(pack: ModuleType) -> ModuleType:
    return importlib.import_module(f"{pack.__name__}.wavespeed.limits.scheduler")


_prompts = iter(range(10**9))


def _run_batch(pack: ModuleType, count: int, seed: int) -> Any:
    prompt = f"a lighthouse, take {next(_prompts)}"  # never reused from an earlier example
    return asyncio.run(
        call("FluxKontextMaxBatch", prompt, count, seed=seed, guidance_scale=3.5, aspect_ratio="1:1")
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(1, 6),
    gate=st.integers(1, 4),
    cancel_after=st.integers(0, 6),
    fixed_seed=st.booleans(),
)
@example(count=3, gate=1, cancel_after=1, fixed_seed=False)  # main: the gate freed, 2 paid after Cancel
@example(count=6, gate=2, cancel_after=2, fixed_seed=True)
def test_no_submit_starts_after_cancel(
    pack: ModuleType,
    pack_env: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    count: int,
    gate: int,
    cancel_after: int,
    fixed_seed: bool,
) -> None:
    cancel_after = min(cancel_after, count)
    monkeypatch.setenv("WAVESPEED_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.setenv("WAVESPEED_RATE_LIMIT_PER_MIN", "1")  # one POST at a time ...
    monkeypatch.setenv("WAVESPEED_RATE_WINDOW_S", "0.01")  # ... a hundredth of a second apart
    monkeypatch.setattr(pack.nodes.batch, "IN_FLIGHT", gate)
    _scheduler(pack).reset_schedulers()
    pack.wavespeed.tasks.paid.submit.reset_session_state()
    bridge = pack.nodes.shared.comfy_bridge
    bridge.clear_interrupt()
    # Cancel while the cancel_after-th POST is the only one in flight
    log = cancel_after_submits(pack_env, monkeypatch, cancel_after, bridge.request_interrupt)
    if cancel_after == 0:
        bridge.request_interrupt()
        log.cancelled()
    outcome: BaseException | None = None
    try:
        _run_batch(pack, count, 100 if fixed_seed else -1)
    except Exception as exc:
        outcome = exc
    finally:
        bridge.clear_interrupt()
        _scheduler(pack).reset_schedulers()
    after = log.after_cancel()
    assert after == [], f"{len(after)} submit(s) accepted after Cancel: {log.events}"
    assert isinstance(outcome, pack.wavespeed.core.errors.CancelledError), (
        outcome
    )  # the batch stops as cancelled


def test_the_scheduler_asks_cancel_right_before_the_post(pack: ModuleType) -> None:
    """A Cancel pressed after the window admitted a submit but before its POST: no POST."""
    scheduler = _scheduler(pack).SubmitScheduler(limit_per_window=5, window_s=60)
    asked: list[int] = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 1  # not cancelled while admitted, cancelled just after

    posts: list[int] = []
    with pytest.raises(pack.wavespeed.core.errors.CancelledError, match="nothing was sent"):
        scheduler.submit(lambda: posts.append(1), cancel=cancel)
    assert posts == [] and scheduler.accepted == 0
    assert scheduler.submit(lambda: "posted") == "posted"  # its slot was given back


MiB = 1 << 20


class _Allocated(Exception):
    """Raised by the spy instead of allocating (the test never asks for the memory itself)."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(1, 85),
    width=st.integers(1, 12000),
    height=st.integers(1, 12000),
    budget=st.sampled_from([MiB, 64 * MiB, 1 << 30]),
)
@example(count=8, width=4000, height=4000, budget=1 << 30)  # case 5: main asked 1.43 GiB
@example(count=85, width=6930, height=5770, budget=1 << 30)  # 85 tasks of 40 MP: about 40 GiB
def test_the_batch_tensor_stays_within_its_budget_or_names_the_paid_tasks_first(
    pack: ModuleType, count: int, width: int, height: int, budget: int
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _check_the_plan(pack, monkeypatch, count, (width, height), budget)


def _check_the_plan(
    pack: ModuleType, monkeypatch: pytest.MonkeyPatch, count: int, size: tuple[int, int], budget: int
) -> None:
    width, height = size
    import torch

    batch = pack.nodes.batch
    asked: list[int] = []

    def spy(shape: Any, *args: Any, **kwargs: Any) -> Any:
        n = 1
        for d in shape:
            n *= int(d)
        asked.append(n * 4)
        raise _Allocated

    monkeypatch.setattr(torch, "zeros", spy)
    monkeypatch.setattr(batch, "MAX_BATCH_BYTES", budget)
    paid = [f"{i:032x}" for i in range(1, min(count, 4) + 1)]
    image = torch.empty((1, 1, 1, 3)).expand(1, height, width, 3)  # the size only, no pixels
    canvas = _canvas(batch, count, paid, budget)
    try:
        canvas.place(0, image)
    except _Allocated:
        assert asked and asked[0] <= budget
        return
    except pack.wavespeed.core.errors.WaveSpeedError as exc:
        assert asked == [], "allocated before refusing"
        assert all(rid in str(exc) for rid in paid) and exc.request_id == paid[0]
        return
    raise AssertionError("neither allocated nor refused")


def _canvas(batch: ModuleType, count: int, paid: list[str], budget: int) -> Any:
    """The Batch node's placement of task images into its tensor (main: the function ``_place``)."""
    if hasattr(batch, "BatchCanvas"):
        return batch.BatchCanvas(count, paid, max_bytes=budget)

    class OnMain:
        def __init__(self) -> None:
            self.out: list[Any] = [None]

        def place(self, index: int, images: Any) -> None:
            batch._place(self.out, images, index, count)

    return OnMain()


def test_a_batch_over_its_memory_budget_names_its_paid_tasks_before_allocating(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Case 5 through the node: 3 outputs of 1024x1024 (36 MiB) against a 30 MiB budget (as 8 of
    4000x4000 against 1 GiB): a typed error naming paid task ids, and the batch never allocated."""
    import torch

    monkeypatch.setenv("WAVESPEED_JOURNAL_DIR", str(tmp_path / "journal"))
    pack.wavespeed.tasks.paid.submit.reset_session_state()
    budget = 30 * MiB
    monkeypatch.setattr(pack.nodes.batch, "MAX_BATCH_BYTES", budget)
    asked: list[int] = []
    zeros = torch.zeros

    def spy(shape: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(shape, tuple) and len(shape) == 4:
            asked.append(int(torch.Size(shape).numel()) * 4)
        return zeros(shape, *args, **kwargs)

    monkeypatch.setattr(torch, "zeros", spy)
    with pytest.raises(pack.wavespeed.core.errors.WaveSpeedError) as caught:
        _run_batch(pack, 3, 11)
    assert all(n <= budget for n in asked), asked
    named = [t.id for t in pack_env.history() if t.id in str(caught.value)]
    assert named and caught.value.request_id in named and "\n" not in str(caught.value)
    assert "not allocated" in str(caught.value) and pack_env.submissions == 3


PAID_PATH = [
    "wavespeed/tasks/paid/prepared.py",
    "wavespeed/tasks/paid/submit.py",
    "wavespeed/tasks/paid/shared_task.py",
    "wavespeed/tasks/paid/payment.py",
    "wavespeed/tasks/paid/reuse.py",
]


@pytest.mark.parametrize("path", PAID_PATH)
def test_no_function_of_the_paid_path_takes_more_than_five_values(path: str) -> None:
    tree = layout.parse_source(REPO_ROOT / path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            names = [n for n in names if n not in ("self", "cls")]
            assert len(names) <= 5, f"{path}:{node.lineno} {node.name} takes {len(names)}: {names}"


def test_every_paid_node_goes_through_the_one_paid_path() -> None:
    """Generate, Edit, Multi-Reference and Batch reach the POST only through submit_task."""
    for path in ("nodes/generate.py", "nodes/edit.py", "nodes/batch.py"):
        text = (REPO_ROOT / path).read_text()
        assert "limits.submit(" not in text and "accounts.submit(" not in text, path
        assert "client.submit(" not in text, path
        used = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
        assert "submit_task" in used, path  # called, or handed to the worker (functools.partial)
    assert "accounts.submit(" in (REPO_ROOT / "wavespeed/tasks/paid/payment.py").read_text()


@pytest.mark.parametrize("kind", ["generate", "edit"])
def test_a_request_is_checked_once_and_its_checked_body_is_what_is_sent(
    pack: ModuleType, pack_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    """The node checks its request once (Edit: once more, with its uploaded URLs in place of the
    stand-ins it was first checked with); neither the paid path nor the client checks it again,
    and the body the check kept is the body WaveSpeed receives."""
    monkeypatch.setenv("WAVESPEED_JOURNAL_DIR", str(tmp_path / "journal"))
    pack.wavespeed.tasks.paid.submit.reset_session_state()
    request_class = pack.wavespeed.api.kontext_request.KontextRequest
    checked: list[Any] = []
    validate = request_class.validate

    def counted(self: Any, **kw: Any) -> Any:
        checked.append(self)
        return validate(self, **kw)

    monkeypatch.setattr(request_class, "validate", counted)
    if kind == "generate":
        task, _ = asyncio.run(call("FluxKontextMaxGenerate", "a checked fox", 5, 3.5, "1:1", False))
    else:
        task, _ = asyncio.run(
            call("FluxKontextMaxEdit", "a checked fox", 5, 3.5, "match input", False, image=image())
        )
    assert len(checked) == (1 if kind == "generate" else 2), checked
    assert checked[-1].checked_for == pack_env.base_url
    assert pack_env.task(task.request_id).input == dict(checked[-1].body) == task.params
