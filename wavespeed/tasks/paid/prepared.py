"""One paid submit, prepared: everything it needs, gathered once (``PaidSubmit.prepare``) and passed
whole through the paid path (submit.py, payment.py, reuse.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...api.kontext_request import KontextRequest
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

    request: KontextRequest
    params: dict[str, Any]
    identity: str  # the inputs' identity (uploaded images by content): what single-flight matches
    account: str  # client.account_tag: key-free
    client: WaveSpeedClient
    journal: Journal | None  # None: unusable, and the submit does not need it (seed -1, force_rerun)
    context: TaskContext
    cancel: CancelLatch  # the context's Cancel, latched: once seen, no POST of this submit starts
    force_rerun: bool = False

    @classmethod
    def prepare(
        cls, request: KontextRequest, context: TaskContext, *, force_rerun: bool = False
    ) -> PaidSubmit:
        """Validate (a typed one-line error before any key lookup or request), then gather the rest."""
        request.validate()
        params = request.payload()
        client = account_client(context)  # raises ConfigError (missing key) before anything is sent
        fixed = not force_rerun and request.seed != -1
        try:
            journal: Journal | None = current_journal(context.user_dir)
        except E.ConfigError:
            raise  # a journal URL that is not one: bad input, whatever the seed
        except Exception as exc:  # the journal's folder cannot even be resolved
            if fixed:
                raise journal_failure(None, exc) from None
            journal = None
        return cls(
            request=request,
            params=params,
            identity=params_hash(request.model, _content_addressed(request)),
            account=client.account_tag,
            client=client,
            journal=journal,
            context=context,
            cancel=CancelLatch(context.cancel),
            force_rerun=force_rerun,
        )

    @property
    def single_flight(self) -> bool:
        """Identical inputs must share one task: a fixed seed, and not force_rerun."""
        return not self.force_rerun and self.request.seed != -1

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


def _content_addressed(request: KontextRequest) -> dict[str, Any]:
    """The payload with uploaded images named by their content: an image uploaded again after a
    restart gets a new URL, but it is the same input, so the same task may be reused."""
    return request.with_references([CACHE.content_id(url) or url for url in request.references]).payload()
