"""One paid submit, prepared: everything it needs, gathered once (``PaidSubmit.prepare``) and passed
whole through the paid path (submit.py, payment.py, reuse.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...api.kontext_request import KontextRequest
from ...api.models import model_of
from ...api.reply_types import Prediction
from ...core import errors as E
from ...journal.sqlite_file import journal_failure
from ...journal.task_journal import Journal, params_hash
from ...net.reference_uploads import CACHE
from ..accounts import account_client
from ..context import CancelLatch, TaskContext
from ..handle import TaskHandle
from ..journals import current_journal

if TYPE_CHECKING:
    from ...net.client import WaveSpeedClient


@dataclass(frozen=True)
class PaidSubmit:
    """Everything one paid submit needs, built once (``prepare``) and passed whole."""

    request: KontextRequest  # checked: its ``body`` is what is sent
    client: WaveSpeedClient
    journal: Journal | None  # None: unusable, and the submit does not need it (seed -1, force_rerun)
    context: TaskContext
    cancel: CancelLatch  # the context's Cancel, latched: once seen, no POST of this submit starts
    force_rerun: bool = False
    single_flight: bool = False  # identical inputs share one task: a fixed seed, no force_rerun
    # Worked out once when it is made (__post_init__), then read as plain fields:
    params: dict[str, Any] = field(init=False)  # the body sent
    payload_hash: str = field(init=False)  # params_hash of that body: recognises the task in the history
    identity: str = field(init=False)  # the inputs' identity (uploads by content): what single-flight matches
    account: str = field(init=False)  # client.account_tag: key-free

    @classmethod
    def prepare(
        cls, request: KontextRequest, context: TaskContext, *, force_rerun: bool = False
    ) -> PaidSubmit:
        """Validate (a typed one-line error before any key lookup or request; a request the node
        already checked is not checked again), then gather the rest."""
        if request.body is None:
            request.validate()
        client = account_client(context)  # raises ConfigError (missing key) before anything is sent
        single_flight = not force_rerun and request.seed != -1
        try:
            journal: Journal | None = current_journal(context.user_dir)
        except E.ConfigError:
            raise  # a journal URL that is not one: bad input, whatever the seed
        except Exception as exc:  # the journal's folder cannot even be resolved
            if single_flight:  # it cannot tell whether this task was paid already
                raise journal_failure(None, exc) from None
            journal = None
        return cls(request, client, journal, context, CancelLatch(context.cancel), force_rerun, single_flight)

    def __post_init__(self) -> None:
        request = self.request
        assert request.body is not None  # prepare() checked it
        params = dict(request.body)
        payload_hash = params_hash(request.model, params)
        row = model_of(request.model).references
        if row is None or row.key not in params:
            identity = payload_hash
        else:  # uploaded images by their content: a new upload after a restart is the same input
            sent = params[row.key]
            named = _by_content(sent) if isinstance(sent, str) else [_by_content(url) for url in sent]
            identity = params_hash(request.model, {**params, row.key: named})
        for name, value in (
            ("params", params),
            ("payload_hash", payload_hash),
            ("identity", identity),
            ("account", self.client.account_tag),
        ):
            object.__setattr__(self, name, value)

    def reused(self, request_id: str, prediction: Prediction | None, submitted_at: float) -> TaskHandle:
        """The handle of a task already paid for (no charge)."""
        return TaskHandle(
            request_id=request_id,
            model=self.request.model,
            params=self.params,
            price_usd=0.0,
            submitted_at=submitted_at,
            prediction=prediction if prediction is not None and prediction.is_terminal else None,
        )


def _by_content(url: str) -> str:
    """An uploaded image's URL as its content (an upload after a restart gets a new URL, but it is
    the same input, so the same task may be reused); any other URL as it is."""
    return CACHE.content_id(url) or url
