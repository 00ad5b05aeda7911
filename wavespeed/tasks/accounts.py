"""The account a task call works for: its client, and its limits. Every submit goes through the
account's scheduler, every wait through the account's poller (wavespeed/limits/scheduler.py,
wavespeed/limits/poller.py).

"Per account" is per client: ``account_client`` keeps one client per account (its key and base URL,
read on every call, so a key set after start-up works without a restart), and the client's
``account_tag`` (key-free) names the account here, as it does in the journal. The submit wait has
its own deadline (``WAVESPEED_SUBMIT_WAIT_S``, default 30 minutes, because a Bronze account takes a
minute per two tasks); Cancel stops it at once and nothing is sent or charged while waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..core.vocabulary import CancelCheck
from ..settings.env_numbers import positive_float_from_env
from .context import TaskContext

if TYPE_CHECKING:
    from ..api.kontext_request import KontextRequest
    from ..api.reply_types import Prediction
    from ..limits.poller import Poller
    from ..limits.scheduler import SubmitScheduler
    from ..net.client import WaveSpeedClient
    from .farm_gate import FarmGate

ENV_SUBMIT_WAIT = "WAVESPEED_SUBMIT_WAIT_S"
SUBMIT_WAIT_S = 1800.0

_clients: dict[str, WaveSpeedClient] = {}  # by account tag
_clients_lock = threading.Lock()


def account_client(context: TaskContext) -> WaveSpeedClient:
    """The context's own client, else the pooled client of the current key and base URL (raises
    ConfigError with a one-line fix when there is no key)."""
    if context.client is not None:
        return context.client
    from ..net.api_session import account_tag_for
    from ..net.client import WaveSpeedClient
    from ..settings.config import load_settings

    settings = load_settings(extra_files=context.key_files)
    account = account_tag_for(settings.base_url, settings.api_key)  # the client's own account_tag
    with _clients_lock:
        client = _clients.get(account)
        if client is None:
            client = _clients[account] = WaveSpeedClient(settings.api_key, settings.base_url)
        return client


def forget_clients() -> None:
    """Forget the pooled clients (as a restart would): the next call makes new ones."""
    with _clients_lock:
        _clients.clear()


def submit_wait_s() -> float:
    return positive_float_from_env(ENV_SUBMIT_WAIT, SUBMIT_WAIT_S, "seconds")


def scheduler(client: WaveSpeedClient) -> SubmitScheduler:
    from ..limits.scheduler import scheduler_for

    return scheduler_for(client.account_tag)


def poller(client: WaveSpeedClient, history: Callable[[str], Sequence[float]] | None = None) -> Poller:
    """The account's poller; ``history`` (model -> past inference seconds) is used by the first
    caller that makes it."""
    from ..limits.poller import account_poller

    return account_poller(client, history)


def submit(
    client: WaveSpeedClient,
    request: KontextRequest,
    *,
    cancel: CancelCheck,
    status: Callable[[str], None],
    gate: FarmGate | None = None,
) -> Prediction:
    """POST the task once the account's window has room (in a farm, ``gate``: the room the farm's
    workers share); a 429 is waited out (status text), not an error, inside WAVESPEED_SUBMIT_WAIT_S."""
    from ..limits.poll_book import budget_from_env

    budget_from_env()  # the poller's budget setting, refused before anything is paid
    deadline = time.monotonic() + submit_wait_s()

    def post() -> Prediction:
        if gate is None:
            return _submit_once(client, request, cancel)
        return gate.post(
            lambda: _submit_once(client, request, cancel), cancel=cancel, status=status, deadline=deadline
        )

    return scheduler(client).submit(post, deadline=deadline, cancel=cancel, status=status)


def _submit_once(client: WaveSpeedClient, request: KontextRequest, cancel: CancelCheck) -> Prediction:
    """One POST whose 429 comes straight back, so the scheduler waits for the window instead of the
    client's short retry loop."""
    return client.submit(request, cancel=cancel, retry_rate_limit=False)
