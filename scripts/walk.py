"""The walk of one prompt: which pack modules hold it, in order, during a Generate -> Poll Result run.

Runs both nodes in-process as ComfyUI runs them (scripts/pack_loader.py ``call``) against a local
emulator, with a profiler that notes every call into a pack function whose frame holds the prompt
(in its arguments or locals, or two levels into them). It prints:

* calls: those calls; a coroutine resumed after an ``await`` is no new call (counted apart, ``resumes``);
* stays: runs of consecutive calls in one module; rooms: the modules visited;
* returns: stays in a module the walk had already left (a walk down the layers and back has few);
* hops: the thread changes among the calls of the Generate submit (the event loop, the worker);
* the calls themselves, one per line, with their thread.

``python scripts/walk.py`` (from the repository). A figure, not a test of speed: tests/tooling/
test_walk.py checks that it runs and prints these figures.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from emulator import Emulator  # noqa: E402
from scripts.pack_loader import PACK_NAME, call, load_nodes  # noqa: E402

PROMPT = "a lighthouse at dusk, walk trace x"
KEY = "walk-key-0123456789"
_RESUMABLE = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def holds(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is the prompt or holds it within two levels (fields, items, attributes)."""
    if value is PROMPT:
        return True
    if depth >= 2:
        return False
    if isinstance(value, Mapping):  # a dict, or a read-only view of one (the request's values)
        return any(holds(v, depth + 1) for v in list(value.values())[:50])
    if isinstance(value, (list, tuple)):
        return any(holds(v, depth + 1) for v in value[:50])
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return any(holds(v, depth + 1) for v in list(attributes.values())[:50])
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields:
        return any(holds(getattr(value, k, None), depth + 1) for k in fields)
    return False


@dataclass
class Trace:
    """The calls noted, as (module, function, thread name), and the coroutine resumes left out."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    resumes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: set[int] = field(default_factory=set)  # coroutine frames already called once

    def profile(self, frame: FrameType, event: str, _arg: Any) -> None:
        module = frame.f_globals.get("__name__", "")
        if event != "call" or not module.startswith(PACK_NAME + "."):
            return
        try:
            if not any(holds(v) for v in list(frame.f_locals.values())):
                return
        except Exception:
            return
        with self.lock:
            if frame.f_code.co_flags & _RESUMABLE:
                if id(frame) in self.started:  # resumed after an await, not called
                    self.resumes += 1
                    return
                self.started.add(id(frame))
            name = module[len(PACK_NAME) + 1 :]
            self.calls.append((name, frame.f_code.co_name, threading.current_thread().name))


def figures(calls: list[tuple[str, str, str]]) -> dict[str, int]:
    """Calls, stays, rooms and returns of a walk (see the module's docstring)."""
    modules = [m for m, _, _ in calls]
    stays = [m for i, m in enumerate(modules) if i == 0 or modules[i - 1] != m]
    seen: set[str] = set()
    returns = 0
    for module in stays:
        returns += module in seen
        seen.add(module)
    return {"calls": len(calls), "stays": len(stays), "rooms": len(seen), "returns": returns}


def hops(calls: list[tuple[str, str, str]]) -> int:
    """Thread changes among the calls of the Generate submit (up to Poll Result's first call)."""
    first_poll = next((i for i, (m, _, _) in enumerate(calls) if m == "nodes.poll"), len(calls))
    threads = [t for _, _, t in calls[:first_poll]]
    return sum(1 for a, b in pairwise(threads) if a != b)


def walk() -> Trace:
    """One Generate -> Poll Result run against a fresh emulator, traced."""
    os.environ["WAVESPEED_JOURNAL_DIR"] = tempfile.mkdtemp(prefix="wavespeed-walk-")
    load_nodes()
    trace = Trace()
    with Emulator(api_keys=(KEY,), inference_s=0.2) as emu:
        os.environ.update(WAVESPEED_API_KEY=KEY, WAVESPEED_BASE_URL=emu.base_url)

        async def run() -> None:
            sys.setprofile(trace.profile)
            threading.setprofile(trace.profile)
            try:
                task, _ = await call("FluxKontextMaxGenerate", PROMPT, 7, 3.5, "1:1", False)
                await call("WaveSpeedPollResult", 60, "pass through", task=task)
            finally:
                sys.setprofile(None)
                threading.setprofile(None)

        asyncio.run(run())
    return trace


def main() -> None:
    trace = walk()
    shown = figures(trace.calls)
    print(
        " ".join(f"{k} {v}" for k, v in shown.items()),
        f"resumes {trace.resumes}",
        f"hops {hops(trace.calls)}",
    )
    for module, function, thread in trace.calls:
        print(f"  {module}:{function}  [{thread}]")


if __name__ == "__main__":
    main()
