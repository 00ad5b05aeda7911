"""Property: recovery matches exactly or not at all.

For any set of submits (edits of a few images, uploaded anew or reused, some typed as URLs, the same
prompt and seed or not), any outcome of each (journaled, interrupted after WaveSpeed accepted it,
or refused), any other tasks in the account's history, and any way the history and each task's
``/result`` echo the inputs (Go re-encoded, raw, under ``inputs`` or ``input``, or not at all), the
recovery of every interrupted submit, in any order, composed as the paid path composes it
(``find_submitted`` with the journal as ``taken`` and the journal's guarded write as ``claim``):

* hands back only a task whose inputs are exactly the intent's payload, and
* never records a task under two identities (no journal write replaces another task's row).

The replies are real JSON read by the real parser; a stand-in answers the two calls the search
makes (no network path is claimed here: tests/wavespeed/tasks/test_recovery_exact.py runs it against the
emulator)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from wavespeed_kontext_pack.wavespeed.api.body_params import wait_keys
from wavespeed_kontext_pack.wavespeed.api.models import model_for, model_of
from wavespeed_kontext_pack.wavespeed.api.reply_types import HistoryItem, Prediction
from wavespeed_kontext_pack.wavespeed.journal import history_search as H
from wavespeed_kontext_pack.wavespeed.journal.singleflight import new_intent
from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal, TaskTakenError
from wavespeed_kontext_pack.wavespeed.journal.task_records import params_hash

from emulator.routes.echo import echo_of, go_time

MODEL_TEXT_TO_IMAGE = model_for("t2i").id
MODEL_EDIT = model_for("edit").id

ACCOUNT = "acct"
SCHEMA = model_of(MODEL_EDIT).body_keys
ECHOES = ("go-inputs", "go-input", "raw-input", "none")


@dataclass(frozen=True)
class Submit:
    """One edit as the node would send it: which image (by content), under which URL, typed in or
    uploaded, and what became of it."""

    content: str  # the picture
    upload: int  # which upload of it (a restart uploads again: a new URL)
    typed: bool  # the URL typed into image_url (its identity is the URL, not the content)
    prompt: str
    seed: int
    ratio: str | None
    outcome: str  # "journaled" | "interrupted" | "refused"
    list_echo: str
    result_echo: str
    same_id_as: int | None = None  # a hostile submit reply naming a task id it gave before

    def url(self) -> str:
        return f"https://media.example/{self.content}-{self.upload}.png"

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": self.prompt, "guidance_scale": 3.5, "seed": self.seed}
        if self.ratio is not None:
            body["aspect_ratio"] = self.ratio
        return {**body, "image": self.url(), "enable_sync_mode": False}

    def identity(self) -> str:
        named = {**self.payload(), "image": self.url() if self.typed else f"sha256:{self.content}"}
        return params_hash(MODEL_EDIT, named)


submits = st.builds(
    Submit,
    content=st.sampled_from("XYZ"),
    upload=st.integers(0, 1),
    typed=st.booleans(),
    prompt=st.sampled_from(["make it night", "make it snow"]),
    seed=st.sampled_from([5, 6]),
    ratio=st.sampled_from([None, "1:1"]),
    outcome=st.sampled_from(["journaled", "interrupted", "interrupted", "refused"]),
    list_echo=st.sampled_from(ECHOES),
    result_echo=st.sampled_from(ECHOES),
    same_id_as=st.none() | st.integers(0, 5),
)


@dataclass
class Task:
    """A task WaveSpeed holds: its id, what it was really sent, how it echoes."""

    id: str
    model: str
    payload: dict[str, Any]
    created_ns: int
    list_echo: str
    result_echo: str

    def obj(self, echo: str) -> dict[str, Any]:
        base = {
            "id": self.id,
            "model": self.model,
            "status": "completed",
            "outputs": [f"https://cdn.example/{self.id}.jpeg"],
            "created_at": go_time(self.created_ns),
            "urls": {"get": f"https://api.example/api/v3/predictions/{self.id}/result"},
        }
        if echo == "none":
            return base
        style, key = echo.split("-")
        return {**base, key: echo_of(self.payload, SCHEMA, style)}


@dataclass
class StandIn:
    """The account's history and each task's /result, as JSON replies read by the real parser."""

    tasks: list[Task] = field(default_factory=list)
    history_calls: int = 0

    def history_page(self, query: dict[str, Any], **_: Any) -> list[HistoryItem]:
        self.history_calls += 1
        assert query["include_inputs"] is True and query["page"] == 1
        items = [t.obj(t.list_echo) for t in sorted(self.tasks, key=lambda t: -t.created_ns)]
        return HistoryItem.page_from_data(json.loads(json.dumps({"items": items, "page": 1})))

    def task_record(self, request_id: str, **_: Any) -> HistoryItem:
        (task,) = [t for t in self.tasks if t.id == request_id]
        return HistoryItem.task_from_data(json.loads(json.dumps(task.obj(task.result_echo))))


strangers = st.lists(
    st.builds(
        lambda s, model: (s, model), submits, st.sampled_from([MODEL_EDIT, MODEL_EDIT, MODEL_TEXT_TO_IMAGE])
    ),
    max_size=3,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(submits, min_size=1, max_size=6),
    strangers,
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_a_recovered_task_is_exactly_the_intents_and_no_task_has_two_identities(
    fresh_journal: Callable[[], Journal],
    plan: list[Submit],
    others: list[tuple[Submit, str]],
    rng: Any,
    look_first: bool,
) -> None:
    """``look_first`` False: the recovery does not consult the journal before claiming (another
    process journals the candidate between the look and the write): the write alone must hold.
    On both backends: SQLite, and the farm's PostgreSQL."""
    server = StandIn()
    written: dict[str, set[str]] = {}  # request id -> every identity a write succeeded for
    clock = time.time_ns()
    since = time.time() - 5
    journal = fresh_journal()
    intents = []
    for n, submit in enumerate(plan):
        if submit.outcome == "refused":
            continue
        if submit.outcome == "journaled" and submit.same_id_as is not None and submit.same_id_as < n:
            # The server named an earlier task's id: the journal must not hand that row over.
            task = Task(f"task{submit.same_id_as:02d}", MODEL_EDIT, submit.payload(), 0, "none", "none")
        else:
            task = Task(
                f"task{n:02d}",
                MODEL_EDIT,
                submit.payload(),
                clock + n,
                submit.list_echo,
                submit.result_echo,
            )
            server.tasks.append(task)
        if submit.outcome == "journaled":
            try:
                journal.record_submitted(
                    task.id, model=MODEL_EDIT, params=task.payload, price_usd=0.08,
                    account=ACCOUNT, identity_hash=submit.identity(),
                )  # fmt: skip
                written.setdefault(task.id, set()).add(submit.identity())
            except TaskTakenError:
                pass
        else:
            payload = submit.payload()
            intents.append(
                new_intent(ACCOUNT, submit.identity(), MODEL_EDIT, params_hash(MODEL_EDIT, payload), payload)
            )
    for n, (other, model) in enumerate(others):  # someone else's tasks, maybe of another model
        server.tasks.append(
            Task(f"other{n}", model, other.payload(), clock + 100 + n, other.list_echo, other.result_echo)
        )
    rng.shuffle(intents)
    for intent in intents:

        def taken(request_id: str, intent: Any = intent) -> bool:
            holder = journal.holder(request_id)
            return holder is not None and holder != (intent.account, intent.identity)

        def claim(found: Prediction, intent: Any = intent) -> bool:
            try:
                journal.record_submitted(
                    found.id, model=MODEL_EDIT, params=intent.payload, price_usd=0.08,
                    account=intent.account, identity_hash=intent.identity, release_intent=True,
                )  # fmt: skip
            except TaskTakenError:
                return False
            written.setdefault(found.id, set()).add(intent.identity)
            return True

        calls = server.history_calls
        found = H.find_submitted(
            server,  # type: ignore[arg-type]
            model=MODEL_EDIT,
            payload_hash=intent.payload_hash,
            since=since,
            deadline=time.monotonic() + 30,
            cancel=lambda: False,
            sent=intent.payload,
            taken=taken if look_first else None,
            claim=claim,
        )
        assert server.history_calls == calls + 1  # one look at the history per recovery
        if isinstance(found, Prediction):
            (task,) = [t for t in server.tasks if t.id == found.id]
            sent = {k: v for k, v in task.payload.items() if k not in wait_keys()}
            wanted = {k: v for k, v in intent.payload.items() if k not in wait_keys()}
            assert task.model == MODEL_EDIT and sent == wanted, (task, intent)
    for request_id, identities in written.items():
        assert len(identities) == 1, (request_id, identities)
        holder = journal.holder(request_id)
        assert holder is not None and holder[1] in identities
    journal.close()
