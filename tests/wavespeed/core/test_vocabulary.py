"""One name per concept (issue 14): the shared vocabulary is defined once, and the request-id
check the client, the journal and the replies use is the same strict one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E, vocabulary
from wavespeed_kontext_pack.wavespeed.core.vocabulary import (
    JournalStatus,
    TaskStatus,
    check_request_id,
    is_request_id,
)
from wavespeed_kontext_pack.wavespeed.journal import singleflight
from wavespeed_kontext_pack.wavespeed.journal.task_journal import Journal
from wavespeed_kontext_pack.wavespeed.limits import poller, scheduler
from wavespeed_kontext_pack.wavespeed.net import client, transport
from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

from emulator import Emulator


def test_cancel_check_is_one_object_everywhere() -> None:
    for module in (client, poller, scheduler, singleflight, transport):
        assert module.CancelCheck is vocabulary.CancelCheck, module.__name__


@pytest.mark.parametrize("rid", ["tâche", "１２３", "abc\u0661", "a b", "", "x" * 129])
def test_client_refuses_a_non_ascii_request_id_before_any_request(
    emulator: Emulator, api_key: str, rid: str
) -> None:
    # Before issue 14 the client's own check used str.isalnum, so "tâche" or full-width digits
    # went into the URL path; now the one check (ASCII only) refuses them without a request.
    with WaveSpeedClient(api_key, emulator.base_url) as c:
        with pytest.raises(E.InvalidRequestError, match="is not a WaveSpeed request id"):
            c.get_result(rid)
        assert c.request_count == 0
    assert not emulator.requests


def test_the_journal_and_the_client_agree_on_ids(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for bad in ("tâche", "../etc", "a b"):
        assert not is_request_id(bad)
        with pytest.raises(ValueError):
            journal.record_submitted(bad, model="m", params={}, price_usd=0.0)
        assert journal.get(bad) is None
    assert check_request_id("  ab-12_C  ") == "ab-12_C"


def test_statuses_are_str_enums_equal_to_the_stored_strings(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_submitted("t1", model="m", params={}, price_usd=0.0)
    journal.update("t1", status=JournalStatus.COMPLETED)
    raw = sqlite3.connect(tmp_path / "journal.sqlite3").execute("SELECT status FROM tasks").fetchone()[0]
    assert type(raw) is str and raw == "completed" == JournalStatus.COMPLETED
    record = journal.get("t1")
    assert record is not None and record.status is JournalStatus.COMPLETED
    assert f"{JournalStatus.IN_FLIGHT}" == str(JournalStatus.IN_FLIGHT) == "in_flight"
    prediction = Prediction.from_data({"id": "t1", "status": "COMPLETED", "outputs": []})
    assert prediction.status is TaskStatus.COMPLETED and prediction.is_completed
    odd = Prediction.from_data({"id": "t1", "status": "queued"})
    assert odd.status == "queued" and not odd.is_terminal
