"""Run a test's calls side by side, one thread each, and collect what came back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(
    call: Callable[[int], T], n: int, join_s: float = 120.0
) -> tuple[list[T], list[BaseException]]:
    """Start ``call(0)`` .. ``call(n - 1)`` together and join each for up to ``join_s``; return the
    results of the calls that returned, in index order, and the errors of those that raised."""
    results: dict[int, T] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            result = call(i)
        except BaseException as exc:  # the caller asserts on them
            with lock:
                errors.append(exc)
        else:
            with lock:
                results[i] = result

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_s)
    return [results[i] for i in sorted(results)], errors
