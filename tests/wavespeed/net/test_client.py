"""WaveSpeedClient behaviour over real loopback sockets against the emulator (no mocking).

Covers the normal paths and the caller-facing controls: local validation (nothing is sent for a
bad request), cancel, progress, sync mode, the sync-mode timeout hand-over to polling, base64
outputs and the download size cap. Waits go through the account's Poller (``wait_for``,
``submit_and_wait``), as the nodes wait; its plan is tested in tests/wavespeed/limits. Fault
handling lives in test_client_faults.py.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from typing import Any

import pytest
import requests
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.models import model_for
from wavespeed_kontext_pack.wavespeed.api.reply_types import Prediction
from wavespeed_kontext_pack.wavespeed.core import errors as E
from wavespeed_kontext_pack.wavespeed.images.batch_plan import images_to_tensor
from wavespeed_kontext_pack.wavespeed.limits.poller import submit_and_wait, wait_for
from wavespeed_kontext_pack.wavespeed.net.client import RetryPolicy, WaveSpeedClient

from emulator import Emulator, size_for_aspect_ratio
from tests.support.clients import fast_client

MODEL_TEXT_TO_IMAGE = model_for("t2i").id
MODEL_EDIT = model_for("edit").id
MODEL_MULTI = model_for("multi").id


def one_line(exc: BaseException, *needles: str) -> str:
    text = str(exc)
    assert text.strip() and "\n" not in text and "\r" not in text, repr(text)
    for needle in needles:
        assert needle.lower() in text.lower(), f"{needle!r} missing from {text!r}"
    return text


def routes(emu: Emulator) -> list[str]:
    return [r.route for r in emu.requests]


# ============================================================================ the normal path


def test_run_text_to_image_end_to_end(emulator: Emulator, client: WaveSpeedClient) -> None:
    req = KontextRequest(prompt="a red fox in snow", seed=42, guidance_scale=4.5, aspect_ratio="16:9")
    done = submit_and_wait(client, req, timeout_s=5.0)
    assert done.is_completed and done.model == MODEL_TEXT_TO_IMAGE
    assert len(done.outputs) == 1 and done.outputs[0].startswith(emulator.base_url)
    task = emulator.task(done.id)
    assert task.input == {
        "prompt": "a red fox in snow",
        "guidance_scale": 4.5,
        "seed": 42,
        "aspect_ratio": "16:9",
        "enable_sync_mode": False,
    }
    image = images_to_tensor([client.download(done.outputs[0])])
    width, height = size_for_aspect_ratio("16:9")
    assert tuple(image.shape) == (1, height, width, 3)
    assert emulator.submissions == 1
    assert emulator.balance == pytest.approx(100.0 - 0.08)


def test_seed_minus_one_is_omitted_so_the_server_picks(emulator: Emulator, client: WaveSpeedClient) -> None:
    pred = client.submit(KontextRequest(prompt="p", seed=-1, aspect_ratio=None))
    body = emulator.task(pred.id).input
    assert "seed" not in body and "aspect_ratio" not in body


def test_edit_with_an_uploaded_image(emulator: Emulator, client: WaveSpeedClient) -> None:
    source = client.download(
        submit_and_wait(client, KontextRequest(prompt="source"), timeout_s=5.0).outputs[0]
    )
    url = client.upload(source, filename="src.jpg", content_type="image/jpeg")
    assert url.startswith(emulator.base_url) and emulator.uploads == [source]
    done = submit_and_wait(
        client, KontextRequest(prompt="make it blue", model=MODEL_EDIT, image=url), timeout_s=5.0
    )
    assert done.is_completed
    assert images_to_tensor([client.download(done.outputs[0])]).shape[0] == 1


def test_multi_reference_with_data_uris(emulator: Emulator, client: WaveSpeedClient) -> None:
    source = client.download(submit_and_wait(client, KontextRequest(prompt="ref"), timeout_s=5.0).outputs[0])
    uri = "data:image/jpeg;base64," + base64.b64encode(source).decode()
    done = submit_and_wait(
        client, KontextRequest(prompt="combine", model=MODEL_MULTI, images=(uri, uri)), timeout_s=5.0
    )
    assert done.is_completed and emulator.task(done.id).input["images"] == [uri, uri]


def test_balance(emulator: Emulator, client: WaveSpeedClient) -> None:
    assert client.balance() == pytest.approx(100.0)
    client.submit(KontextRequest(prompt="p"))
    assert client.balance() == pytest.approx(100.0 - 0.08)


# ============================================================================ local validation


BAD_REQUESTS = [
    pytest.param(KontextRequest(prompt=""), "prompt", id="empty-prompt"),
    pytest.param(KontextRequest(prompt="   \n\t"), "prompt", id="blank-prompt"),
    pytest.param(KontextRequest(prompt="x" * 10_001), "prompt", id="prompt-too-long"),
    pytest.param(KontextRequest(prompt="p", seed=-2), "seed", id="seed-minus-2"),
    pytest.param(KontextRequest(prompt="p", seed=2_147_483_648), "seed", id="seed-2^31"),
    pytest.param(KontextRequest(prompt="p", seed=True), "seed", id="seed-bool"),
    pytest.param(KontextRequest(prompt="p", seed=1.5), "seed", id="seed-float"),  # type: ignore[arg-type]
    pytest.param(KontextRequest(prompt="p", guidance_scale=0.9), "guidance_scale", id="guidance-0.9"),
    pytest.param(KontextRequest(prompt="p", guidance_scale=20.1), "guidance_scale", id="guidance-20.1"),
    pytest.param(KontextRequest(prompt="p", guidance_scale=math.nan), "guidance_scale", id="guidance-nan"),
    pytest.param(KontextRequest(prompt="p", guidance_scale=math.inf), "guidance_scale", id="guidance-inf"),
    pytest.param(KontextRequest(prompt="p", aspect_ratio="5:4"), "aspect_ratio", id="aspect-5:4"),
    pytest.param(
        KontextRequest(prompt="p", enable_sync_mode="yes"),  # type: ignore[arg-type]
        "enable_sync_mode",
        id="sync-not-bool",
    ),
    pytest.param(
        KontextRequest(prompt="p", enable_sync_mode=1),  # type: ignore[arg-type]
        "enable_sync_mode",
        id="sync-int",
    ),
    pytest.param(KontextRequest(prompt="p", model=MODEL_EDIT), "image", id="edit-without-image"),
    pytest.param(
        KontextRequest(prompt="p", model=MODEL_EDIT, image="/home/me/cat.png"), "image", id="edit-local-path"
    ),
    pytest.param(KontextRequest(prompt="p", model=MODEL_MULTI), "images", id="multi-0-images"),
    pytest.param(
        KontextRequest(prompt="p", model=MODEL_MULTI, images=("https://x/a.png",) * 6),
        "at most 5",
        id="multi-6-images",
    ),
    pytest.param(KontextRequest(prompt="p", model="someone/else"), "model", id="unknown-model"),
]


@pytest.mark.parametrize(("req", "names"), BAD_REQUESTS)
def test_invalid_request_is_refused_before_anything_is_sent(
    emulator: Emulator, client: WaveSpeedClient, req: KontextRequest, names: str
) -> None:
    with pytest.raises(E.InvalidRequestError) as info:
        client.submit(req)
    one_line(info.value, names)
    assert emulator.requests == [], "a request reached the server for an invalid task"
    assert client.request_count == 0
    with pytest.raises(E.InvalidRequestError):
        submit_and_wait(client, req)
    assert emulator.requests == [] and emulator.submissions == 0


def test_a_request_checked_for_another_base_url_is_checked_again_before_anything_is_sent(
    emulator: Emulator, api_key: str
) -> None:
    """``validate`` keeps the body it checked and the base URL it checked for; a client sends that
    body as it is only for its own base URL. An image on the emulator's (loopback) origin, checked
    for the emulator, is checked again by a client of another base, and refused there unsent."""
    url = f"{emulator.base_url}/media/source.png"
    request = KontextRequest(prompt="p", model=MODEL_EDIT, image=url).validate(api_base=emulator.base_url)
    assert request.checked_for == emulator.base_url and request.body == request.payload()
    with Emulator(api_keys=(api_key,)) as other, fast_client(other.base_url, api_key) as elsewhere:
        with pytest.raises(E.InvalidRequestError) as info:
            elsewhere.submit(request)
        one_line(info.value, "image")
        assert other.requests == [] and elsewhere.request_count == 0
    assert request.checked_for == emulator.base_url  # a refused check keeps what it had


@pytest.mark.parametrize(
    "req",
    [
        KontextRequest(prompt="p", seed=-1, guidance_scale=1.0, aspect_ratio="21:9"),
        KontextRequest(prompt="p", seed=2_147_483_647, guidance_scale=20.0, aspect_ratio="9:21"),
        KontextRequest(prompt="p", seed=0, guidance_scale=20, enable_sync_mode=False),
        KontextRequest(prompt="p", model=MODEL_MULTI, images=("https://x.example/a.png",) * 5),
    ],
    ids=["low-edges", "high-edges", "int-guidance", "multi-5"],
)
def test_boundary_values_pass_validation(req: KontextRequest) -> None:
    assert req.validate() is req


# ============================================================================ cancel


def test_cancel_stops_a_wait_within_300ms(emulator: Emulator, api_key: str) -> None:
    # The plan's gaps grow to seconds on a task that never ends: only a sliced wait sees Cancel in time.
    emulator.next_tasks(never_finish=True)
    cancelled = threading.Event()
    fired_at: list[float] = []

    def fire() -> None:
        fired_at.append(time.monotonic())
        cancelled.set()

    with fast_client(emulator.base_url, api_key) as client:
        first = client.submit(KontextRequest(prompt="p"))
        timer = threading.Timer(0.4, fire)
        timer.start()
        try:
            with pytest.raises(E.CancelledError) as info:
                wait_for(client, first.id, timeout_s=30.0, cancel=cancelled.is_set, first=first)
        finally:
            timer.cancel()
    latency = time.monotonic() - fired_at[0]
    assert latency < 0.3, f"cancel took {latency:.3f}s to stop the wait"
    assert info.value.request_id == first.id
    one_line(info.value, "Cancelled", first.id, "Poll Result")


def test_cancel_interrupts_a_long_retry_after_sleep(emulator: Emulator, client: WaveSpeedClient) -> None:
    first = client.submit(KontextRequest(prompt="p"))
    emulator.inject("result", "status", status=429, retry_after=5)
    cancelled = threading.Event()
    timer = threading.Timer(0.3, cancelled.set)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(E.CancelledError):
            wait_for(client, first.id, timeout_s=30.0, cancel=cancelled.is_set)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 0.6, "the Retry-After sleep ignored Cancel"


def test_cancel_before_submit_sends_nothing(emulator: Emulator, client: WaveSpeedClient) -> None:
    with pytest.raises(E.CancelledError) as info:
        client.submit(KontextRequest(prompt="p"), cancel=lambda: True)
    one_line(info.value, "Cancelled")
    assert emulator.requests == [] and emulator.submissions == 0


# ============================================================================ progress, sync, first=


def test_progress_callback_sees_each_status_in_order(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.next_tasks(queue_s=0.15, inference_s=0.25)
    seen: list[tuple[str, float]] = []
    first = client.submit(KontextRequest(prompt="p"))
    done = wait_for(
        client, first.id, timeout_s=5.0, progress=lambda p, t: seen.append((p.status, t)), first=first
    )
    statuses = [s for s, _ in seen]
    # The plan decides which intermediate statuses a poll happens to see; the order never goes back.
    assert statuses[0] == "created" and statuses[-1] == "completed"
    order = {"created": 0, "processing": 1, "completed": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    elapsed = [t for _, t in seen]
    assert elapsed == sorted(elapsed) and elapsed[-1] >= 0.3
    assert done.is_completed and statuses.count("completed") == 1


def test_sync_mode_returns_completed_from_one_post(emulator: Emulator, client: WaveSpeedClient) -> None:
    pred = client.submit(KontextRequest(prompt="p", enable_sync_mode=True))
    assert pred.is_completed and len(pred.outputs) == 1
    assert [(r.method, r.route) for r in emulator.requests] == [("POST", "submit")]
    assert images_to_tensor([client.download(pred.outputs[0])]).shape[0] == 1


def test_sync_timeout_5004_is_finished_by_polling(emulator: Emulator, client: WaveSpeedClient) -> None:
    emulator.configure(sync_timeout_s=0.1)
    emulator.next_tasks(inference_s=0.6)
    pred = client.submit(KontextRequest(prompt="p", enable_sync_mode=True))
    assert pred.code == 5004 and pred.sync_timed_out and not pred.is_terminal
    done = wait_for(client, pred.id, timeout_s=5.0, first=pred)
    assert done.is_completed and done.id == pred.id
    assert emulator.submissions == 1
    assert routes(emulator).count("submit") == 1 and routes(emulator).count("result") >= 1


# ============================================================================ outputs


def _raw_submit(emu: Emulator, key: str, body: dict[str, Any]) -> str:
    r = requests.post(
        f"{emu.base_url}/api/v3/{MODEL_TEXT_TO_IMAGE}",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    rid: str = r.json()["data"]["id"]
    return rid


def test_base64_outputs_are_decoded_without_a_download(
    emulator: Emulator, client: WaveSpeedClient, api_key: str
) -> None:
    rid = _raw_submit(emulator, api_key, {"prompt": "p", "enable_base64_output": True, "aspect_ratio": "1:1"})
    done = wait_for(client, rid, timeout_s=5.0)
    assert done.is_completed and not done.outputs[0].startswith("http")
    data = client.download(done.outputs[0])
    assert data == base64.b64decode(done.outputs[0])
    width, height = size_for_aspect_ratio("1:1")
    assert tuple(images_to_tensor([data]).shape) == (1, height, width, 3)
    # The same image as a data URI, as some endpoints send it.
    assert client.download("data:image/jpeg;base64," + done.outputs[0]) == data
    assert "download" not in routes(emulator)


def test_invalid_base64_output_is_a_download_error(client: WaveSpeedClient) -> None:
    with pytest.raises(E.DownloadError) as info:
        client.download("this is not base64 !!!")
    one_line(info.value, "neither a URL nor valid base64")


def test_base64_output_over_the_cap_is_refused(emulator: Emulator, api_key: str) -> None:
    with fast_client(emulator.base_url, api_key, max_download_bytes=100) as client:
        with pytest.raises(E.DownloadError) as info:
            client.download(base64.b64encode(b"x" * 1000).decode())
        assert client.download(base64.b64encode(b"y" * 60).decode()) == b"y" * 60
    one_line(info.value, "100-byte cap")


def test_url_download_over_the_cap_is_refused(emulator: Emulator, api_key: str) -> None:
    with fast_client(emulator.base_url, api_key) as client:
        done = submit_and_wait(client, KontextRequest(prompt="p"), timeout_s=5.0)
        size = len(client.download(done.outputs[0]))
    with fast_client(emulator.base_url, api_key, max_download_bytes=size - 1) as capped:
        with pytest.raises(E.DownloadError) as info:
            capped.download(done.outputs[0])
        one_line(info.value, f"{size - 1}-byte cap")
    with fast_client(emulator.base_url, api_key, max_download_bytes=size) as exact:
        assert len(exact.download(done.outputs[0])) == size


def test_download_respects_cancel(emulator: Emulator, client: WaveSpeedClient) -> None:
    done = submit_and_wait(client, KontextRequest(prompt="p"), timeout_s=5.0)
    before = len(emulator.requests)
    with pytest.raises(E.CancelledError):
        client.download(done.outputs[0], cancel=lambda: True)
    assert len(emulator.requests) == before


# ============================================================================ misc


def test_prediction_parsing_rejects_garbage() -> None:
    bad: object
    for bad in (
        None,
        [],
        {"status": "completed"},
        {"id": "x"},
        {"id": "x", "status": "completed", "outputs": "u"},
    ):
        with pytest.raises(ValueError):
            Prediction.from_data(bad)


def test_client_is_safe_to_share_between_threads(emulator: Emulator, client: WaveSpeedClient) -> None:
    results: list[Prediction] = []
    lock = threading.Lock()

    def job(i: int) -> None:
        pred = submit_and_wait(client, KontextRequest(prompt=f"thread {i}"), timeout_s=10.0)
        with lock:
            results.append(pred)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15.0)
    assert len(results) == 6 and all(p.is_completed for p in results)
    assert len({p.id for p in results}) == 6 and emulator.submissions == 6


def test_cancel_stops_an_upload_that_keeps_failing(emulator: Emulator, api_key: str) -> None:
    """Regression: upload ignored Cancel and its deadline, retrying for seconds after the node stopped."""
    emulator.inject("upload", "status", status=503, times=1000)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with fast_client(
        emulator.base_url, api_key, retry=RetryPolicy(attempts=50, base_delay_s=0.05, max_delay_s=0.2)
    ) as c:
        started = time.monotonic()
        with pytest.raises(E.CancelledError):
            c.upload(b"\x89PNG not really", cancel=stop.is_set)
        assert time.monotonic() - started < 0.8
        with pytest.raises(E.WaitTimeoutError):
            c.upload(b"\x89PNG not really", deadline=time.monotonic() + 0.3)
