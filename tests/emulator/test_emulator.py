"""Tests of the WaveSpeed API emulator itself, over real loopback sockets (no mocking).

Other tests trust the emulator to behave like the API and to misbehave exactly as told; these
tests are what earns that trust.
"""

from __future__ import annotations

import ast
import base64
import io
import re
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from emulator import Emulator, render_edit, render_text_to_image, size_for_aspect_ratio
from emulator.behaviour.imagegen import RGB
from scripts import layout
from scripts.pack_loader import REPO_ROOT

T2I = "wavespeed-ai/flux-kontext-max/text-to-image"
EDIT = "wavespeed-ai/flux-kontext-max"
MULTI = "wavespeed-ai/flux-kontext-max/multi"


class Api:
    """A minimal client over one keep-alive session, so the tests read like API calls."""

    def __init__(self, emu: Emulator, key: str) -> None:
        self.emu = emu
        self.base = emu.base_url
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {key}"

    def submit(self, model: str, body: dict[str, Any], **kw: Any) -> requests.Response:
        return self.s.post(f"{self.base}/api/v3/{model}", json=body, timeout=10, **kw)

    def result(self, request_id: str, prefix: str = "/api/v3") -> requests.Response:
        return self.s.get(f"{self.base}{prefix}/predictions/{request_id}/result", timeout=10)

    def create(self, model: str, body: dict[str, Any]) -> str:
        r = self.submit(model, body)
        assert r.status_code == 200, r.text
        request_id: str = r.json()["data"]["id"]
        return request_id

    def wait(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The task once terminal: first looked at when the emulator's clock ends it, then at the
        published pace (2 s between checks of one task; a closer one is a 429)."""
        deadline = time.monotonic() + timeout
        end = self.emu.task(request_id).terminal_at
        if end is not None:
            time.sleep(max(0.0, min(end, deadline) - time.monotonic()) + 0.01)
        while True:
            data: dict[str, Any] = self.result(request_id).json()["data"]
            if data["status"] in ("completed", "failed") or time.monotonic() > deadline:
                return data
            time.sleep(2.05)

    def image(self, url: str) -> RGB:
        r = requests.get(url, timeout=10)  # plain GET: CDN downloads carry no key
        assert r.status_code == 200
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))

    def upload(self, data: bytes, filename: str = "image.png", mime: str = "image/png") -> requests.Response:
        return self.s.post(
            f"{self.base}/api/v3/media/upload/binary", files={"file": (filename, data, mime)}, timeout=30
        )


@pytest.fixture
def api(emulator: Emulator, api_key: str) -> Api:
    return Api(emulator, api_key)


def png_bytes(arr: RGB) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def gradient(h: int, w: int, tint: int) -> RGB:
    """A small test picture whose inversion is easy to recognise."""
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    img = np.stack([y + 0 * x, x + 0 * y, np.full((h, w), tint, np.float32)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def assert_error(r: requests.Response, status: int, contains: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    # The default error body (error_body="full"): code, message, error_code and data.error.
    assert body["code"] == status and body["data"] == {"error": body["message"]}
    assert body["error_code"] == str(status)  # a string, as the official clients type it
    assert contains.lower() in body["message"].lower()


# --------------------------------------------------------------------------- auth and routing


def test_auth_is_required_on_every_api_route(api: Api, emulator: Emulator, api_key: str) -> None:
    """A client's key handling is only testable if a missing or wrong key really fails."""
    base = emulator.base_url
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {api_key}"}):
        for method, path in (
            ("POST", f"/api/v3/{T2I}"),
            ("GET", "/api/v3/balance"),
            ("GET", "/api/v3/predictions/x"),
        ):
            r = requests.request(method, base + path, headers=headers, json={"prompt": "p"}, timeout=5)
            assert r.status_code == 401
            text = "Unauthorized: invalid authentication"
            assert r.json() == {"code": 401, "message": text, "error_code": "401", "data": {"error": text}}
    assert emulator.submissions == 0
    extra = {"X-Client-Name": "test", "X-Client-Version": "1", "X-Client-OS": "linux"}
    assert api.submit(T2I, {"prompt": "p"}, headers=extra).status_code == 200


def test_unknown_model_and_non_model_post_routes(api: Api, emulator: Emulator) -> None:
    """The model route must not swallow /predictions (list) or /media/... posts."""
    assert_error(
        api.submit("wavespeed-ai/no-such-model", {"prompt": "p"}), 404, "model not found: wavespeed-ai/"
    )
    api.create(T2I, {"prompt": "p"})
    listing = api.s.post(f"{api.base}/api/v3/predictions", json={"page": 1, "page_size": 10}, timeout=5)
    assert listing.status_code == 200 and listing.json()["data"]["total"] == 1
    r = api.s.post(f"{api.base}/api/v3/media/whatever", json={}, timeout=5)
    assert r.status_code == 404 and "model not found" not in r.text
    assert emulator.submissions == 1


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (T2I, {}, "prompt"),
        (T2I, {"prompt": "  "}, "prompt"),
        (T2I, {"prompt": 3}, "prompt"),
        (T2I, {"prompt": "p", "seed": -2}, "seed"),
        (T2I, {"prompt": "p", "seed": 2147483648}, "seed"),
        (T2I, {"prompt": "p", "seed": True}, "seed"),
        (T2I, {"prompt": "p", "seed": 1.5}, "seed"),
        (T2I, {"prompt": "p", "guidance_scale": 0.5}, "guidance_scale"),
        (T2I, {"prompt": "p", "guidance_scale": 20.5}, "guidance_scale"),
        (T2I, {"prompt": "p", "guidance_scale": "3"}, "guidance_scale"),
        (T2I, {"prompt": "p", "aspect_ratio": "5:4"}, "aspect_ratio"),
        (T2I, {"prompt": "p", "enable_sync_mode": "yes"}, "enable_sync_mode"),
        (T2I, {"prompt": "p", "num_images": 0}, "num_images"),
        (T2I, {"prompt": "p", "num_images": 5}, "num_images"),
        (T2I, {"prompt": "p", "enable_base64_output": 1}, "enable_base64_output"),
        (T2I, {"prompt": "p", "safety_tolerance": "6"}, "safety_tolerance"),
        (EDIT, {"prompt": "p"}, "image"),
        (MULTI, {"prompt": "p", "images": []}, "images"),
        (MULTI, {"prompt": "p", "images": ["data:,"] * 6}, "images"),
        (MULTI, {"prompt": "p", "images": "http://x/a.png"}, "images"),
    ],
)
def test_validation_names_the_bad_field(
    api: Api, emulator: Emulator, model: str, body: dict[str, Any], field: str
) -> None:
    """Bad input is rejected before any money is spent, with a message a user can act on."""
    assert_error(api.submit(model, body), 400, field)
    assert emulator.submissions == 0
    assert emulator.balance == 100.0


def test_lenient_fields_are_accepted(api: Api) -> None:
    """Unknown extras are ignored and safety_tolerance may be an int, as the doc recommends."""
    body = {"prompt": "p", "safety_tolerance": 5, "guidance_scale": 20, "seed": -1, "whatever": {"x": 1}}
    assert api.submit(T2I, body).status_code == 200
    assert api.submit(T2I, {"prompt": "p", "safety_tolerance": "1", "seed": 2147483647}).status_code == 200


def test_the_pro_models_have_their_own_limits_and_price(api: Api, emulator: Emulator) -> None:
    """The emulator's own registry (it imports nothing of the pack) holds the three [pro] models:
    guidance to 10 on the edit model, to 20 on multi, and $0.04 an image off the balance."""
    pro_edit, pro_multi = "wavespeed-ai/flux-kontext-pro", "wavespeed-ai/flux-kontext-pro/multi"
    image = {"prompt": "p", "image": "data:,"}
    assert_error(api.submit(pro_edit, {**image, "guidance_scale": 10.5}), 400, "guidance_scale")
    assert emulator.submissions == 0
    assert api.submit(pro_edit, {**image, "guidance_scale": 10.0}).status_code == 200
    assert (
        api.submit(pro_multi, {"prompt": "p", "images": ["data:,"], "guidance_scale": 15}).status_code == 200
    )
    assert api.submit("wavespeed-ai/flux-kontext-pro/text-to-image", {"prompt": "p"}).status_code == 200
    assert emulator.balance == pytest.approx(100.0 - 3 * 0.04)


def test_bad_json_body_is_400(api: Api) -> None:
    r = api.s.post(f"{api.base}/api/v3/{T2I}", data=b"{not json", timeout=5)
    assert_error(r, 400, "json")


# --------------------------------------------------------------------------- lifecycle and outputs


def test_lifecycle_created_processing_completed(api: Api, emulator: Emulator) -> None:
    """The status walks created -> processing -> completed on the clock, with a real image at the end."""
    # Looked at every few tenths of a second, as the pace refuses (test_emulator_evidence.py tests it).
    emulator.configure(queue_s=0.3, inference_s=0.3, poll_gap_s=0)
    t0 = time.monotonic()
    r = api.submit(T2I, {"prompt": "a lighthouse", "seed": 7, "aspect_ratio": "16:9"})
    body = r.json()
    assert r.headers["Content-Length"] == str(len(r.content))
    assert body["code"] == 200 and body["message"] == "success" and "error" not in body
    data = body["data"]
    rid = data["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert data["status"] == "created" and data["outputs"] == [] and data["has_nsfw_contents"] == []
    assert data["urls"]["get"] == f"{emulator.base_url}/api/v3/predictions/{rid}/result"
    # Go's RFC3339Nano at millisecond precision: trailing zeros cut (".027Z", ".92Z", none at all).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,2}[1-9])?Z", data["created_at"])
    assert data["error"] == "" and data["timings"] == {"inference": 0}
    assert api.result(rid).json()["data"]["status"] == "created"
    time.sleep(max(0.0, t0 + 0.45 - time.monotonic()))
    assert api.result(rid).json()["data"]["status"] == "processing"
    done = api.wait(rid)
    assert done["status"] == "completed"
    assert done["timings"] == {"inference": 300} and done["executionTime"] == 300
    assert done["has_nsfw_contents"] == [False]
    # /result echoes no request by default (the history does, when asked: test_emulator_evidence.py).
    assert "inputs" not in done and "input" not in done
    (url,) = done["outputs"]
    assert url == f"{emulator.base_url}/cdn/output/{rid}-0.jpeg"
    img = requests.get(url, timeout=5)
    assert img.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(img.content)).size == size_for_aspect_ratio("16:9") == (1392, 752)
    # the same envelope on the /predictions/{id} form and on the legacy v2 prefix
    assert api.s.get(f"{api.base}/api/v3/predictions/{rid}", timeout=5).json()["data"] == done
    assert api.result(rid, "/api/v2").json()["data"] == done


def test_pixels_are_deterministic_per_prompt_and_seed(api: Api, emulator: Emulator) -> None:
    """Same prompt+seed gives the same bytes; another seed or prompt gives a visibly different image."""
    emulator.configure(inference_s=0.05)

    def fetch(prompt: str, seed: int) -> bytes:
        data = api.wait(api.create(T2I, {"prompt": prompt, "seed": seed, "aspect_ratio": "21:9"}))
        return requests.get(data["outputs"][0], timeout=5).content

    a, b = fetch("red fox", 1), fetch("red fox", 1)
    assert a == b
    arr_a = np.asarray(Image.open(io.BytesIO(a)), dtype=np.int16)
    for other in (fetch("red fox", 2), fetch("blue fox", 1)):
        arr_o = np.asarray(Image.open(io.BytesIO(other)), dtype=np.int16)
        assert arr_o.shape == (672, 1568, 3)
        assert np.abs(arr_a - arr_o).mean() > 10


def test_num_images_uses_consecutive_seeds(api: Api, emulator: Emulator) -> None:
    """Output i is rendered from seed+i, and the expected pixels can be recomputed exactly (PNG)."""
    emulator.configure(inference_s=0.05, output_format="png")
    data = api.wait(api.create(T2I, {"prompt": "dunes", "seed": 40, "num_images": 2, "aspect_ratio": "3:4"}))
    assert len(data["outputs"]) == 2 and data["has_nsfw_contents"] == [False, False]
    w, h = size_for_aspect_ratio("3:4")
    for i, url in enumerate(data["outputs"]):
        assert url.endswith(f"-{i}.png")
        np.testing.assert_array_equal(api.image(url), render_text_to_image("dunes", 40 + i, w, h))
    assert emulator.balance == pytest.approx(100.0 - 0.16)


def test_random_seed_is_recorded(api: Api, emulator: Emulator) -> None:
    """seed -1 (or absent) picks a seed that the task keeps, so the output can be reproduced."""
    emulator.configure(inference_s=0.05, output_format="png")
    rid = api.create(T2I, {"prompt": "moss", "seed": -1, "aspect_ratio": "1:1"})
    seed = emulator.task(rid).seed
    assert 0 <= seed <= 2147483647
    assert emulator.task(rid).input["seed"] == -1
    out = api.image(api.wait(rid)["outputs"][0])
    np.testing.assert_array_equal(out, render_text_to_image("moss", seed, 1024, 1024))


def test_sync_mode_completes_in_one_post(api: Api, emulator: Emulator) -> None:
    """enable_sync_mode holds the reply until the task is done."""
    t0 = time.monotonic()
    r = api.submit(T2I, {"prompt": "p", "enable_sync_mode": True})
    assert time.monotonic() - t0 >= 0.19
    data = r.json()["data"]
    assert data["status"] == "completed" and len(data["outputs"]) == 1
    assert [x.route for x in emulator.requests] == ["submit"]


def test_sync_mode_timeout_returns_5004(api: Api, emulator: Emulator) -> None:
    """Past sync_timeout_s the API answers 200 with code 5004 and the task keeps running."""
    emulator.configure(sync_timeout_s=0.1)
    emulator.next_tasks(never_finish=True)
    r = api.submit(T2I, {"prompt": "p", "enable_sync_mode": True})
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["status"] == "processing" and data["code"] == 5004
    assert (
        data["error"]
        == "Sync mode timed out after 0.1 seconds. The prediction is still processing asynchronously."
    )
    assert data["urls"]["get"].endswith(f"/predictions/{data['id']}/result")
    assert api.result(data["id"]).json()["data"]["status"] == "processing"


def test_sync_mode_failure_is_returned_inline(api: Api, emulator: Emulator) -> None:
    emulator.next_tasks(fail="boom", fail_code=1403, inference_s=0.05)
    data = api.submit(T2I, {"prompt": "p", "enable_sync_mode": True}).json()["data"]
    assert (data["status"], data["code"], data["error"]) == ("failed", 1403, "boom")


def test_base64_output_is_bare_base64(api: Api, emulator: Emulator) -> None:
    """enable_base64_output returns the image bytes inline, with no data: prefix."""
    emulator.configure(inference_s=0.05)
    data = api.wait(
        api.create(T2I, {"prompt": "p", "seed": 3, "enable_base64_output": True, "aspect_ratio": "9:16"})
    )
    (out,) = data["outputs"]
    assert not out.startswith("data:")
    img = Image.open(io.BytesIO(base64.b64decode(out, validate=True)))
    assert img.format == "JPEG" and img.size == (752, 1392)


def test_webhook_with_base64_is_the_documented_bare_400(api: Api, emulator: Emulator) -> None:
    r = api.s.post(
        f"{api.base}/api/v3/{T2I}?webhook=https://example.invalid/hook",
        json={"prompt": "p", "enable_base64_output": True},
        timeout=5,
    )
    assert r.status_code == 400 and set(r.json()) == {"error"}
    assert emulator.submissions == 0


def test_next_tasks_fail_never_finish_and_nsfw(api: Api, emulator: Emulator) -> None:
    """Planned behaviours apply to the next accepted submissions in order, then stop applying."""
    emulator.configure(inference_s=0.05)
    emulator.next_tasks(fail="GPU on fire", fail_code=5000)
    emulator.next_tasks(never_finish=True)
    emulator.next_tasks(nsfw=True)
    failed, hung, nsfw, normal = (api.create(T2I, {"prompt": f"p{i}"}) for i in range(4))
    time.sleep(0.15)
    f = api.result(failed).json()["data"]
    assert (f["status"], f["code"], f["error"], f["outputs"]) == ("failed", 5000, "GPU on fire", [])
    assert api.result(hung).json()["data"]["status"] == "processing"
    n = api.wait(nsfw)
    assert n["status"] == "completed" and n["has_nsfw_contents"] == [True]
    assert api.wait(normal)["has_nsfw_contents"] == [False]


def test_unknown_prediction_id_is_404(api: Api) -> None:
    for r in (  # three ids: a second check of one id within 2 s would be a 429
        api.result("0" * 32),
        api.result("abc", "/api/v2"),
        api.s.get(f"{api.base}/api/v3/predictions/abd"),
    ):
        assert r.status_code == 404
        assert r.json()["data"] == {"error": r.json()["message"]}
        assert r.json()["message"].startswith("Prediction not found: ")


# --------------------------------------------------------------------------- balance


@pytest.mark.parametrize("status", [None, 400, 402, 403])
def test_balance_decreases_and_insufficient_credits_when_short(
    api: Api, emulator: Emulator, status: int | None
) -> None:
    """Each accepted image costs 0.08 USD; a short balance is refused with an HTTP error saying
    "Insufficient credits" (400 by default; low_balance_status switches it) and creates nothing."""
    if status is not None:
        emulator.configure(low_balance_status=status)
    expected = status or 400
    emulator.configure(balance=0.2)
    bal = api.s.get(f"{api.base}/api/v3/balance", timeout=5).json()
    assert bal == {"code": 200, "message": "success", "data": {"balance": 0.2}}
    api.create(T2I, {"prompt": "p", "num_images": 2})
    assert api.s.get(f"{api.base}/api/v3/balance", timeout=5).json()["data"]["balance"] == pytest.approx(0.04)
    r = api.submit(T2I, {"prompt": "p"})
    text = "Insufficient credits: top up your WaveSpeed account"
    assert r.json() == {
        "code": expected,
        "message": text,
        "error_code": str(expected),
        "data": {"error": text},
    }
    assert r.status_code == expected and emulator.submissions == 1
    assert api.submit("wavespeed-ai/flux-kontext-pro/text-to-image", {"prompt": "p"}).status_code == 200
    assert emulator.balance == pytest.approx(0.0)


# --------------------------------------------------------------------------- faults


def test_status_fault_with_retry_after_is_used_up(api: Api, emulator: Emulator) -> None:
    """A 429 on submit is a refusal: no task, Retry-After sent, and exactly `times` requests hit."""
    emulator.inject("submit", "status", status=429, retry_after=2, times=2, message="Too many requests")
    for _ in range(2):
        r = api.submit(T2I, {"prompt": "p"})
        assert_error(r, 429, "too many")
        assert r.headers["Retry-After"] == "2"
    assert emulator.submissions == 0
    assert api.submit(T2I, {"prompt": "p"}).status_code == 200
    assert emulator.pending_faults == 0
    assert [x.status for x in emulator.requests] == [429, 429, 200]


def test_html_fault_on_result_only(api: Api, emulator: Emulator) -> None:
    """Gateway-style HTML errors hit only the chosen route."""
    rid = api.create(T2I, {"prompt": "p"})
    emulator.inject("result", "html", status=503)
    assert api.s.get(f"{api.base}/api/v3/balance", timeout=5).status_code == 200
    r = api.result(rid)
    assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html")
    assert "<html>" in r.text
    assert api.result(rid).status_code == 200


def test_reset_on_submit_creates_no_task(api: Api, emulator: Emulator) -> None:
    """A connection reset before processing: the client sees a reset, the server billed nothing."""
    emulator.inject("submit", "reset")
    with pytest.raises(requests.ConnectionError):
        api.submit(T2I, {"prompt": "p"})
    assert emulator.submissions == 0 and emulator.balance == 100.0
    assert emulator.requests[-1].status == 0
    assert api.submit(T2I, {"prompt": "p"}).status_code == 200


def test_reset_after_accept_creates_the_task(api: Api, emulator: Emulator) -> None:
    """The ambiguous case: the reply is lost but the task exists and was charged."""
    emulator.inject("submit", "reset_after_accept")
    with pytest.raises(requests.ConnectionError):
        api.submit(T2I, {"prompt": "p"})
    assert emulator.submissions == 1
    assert emulator.balance == pytest.approx(100.0 - 0.08)


def test_status_after_accept_creates_the_task(api: Api, emulator: Emulator) -> None:
    """A gateway 504 after the server accepted: like sync mode timing out at the edge."""
    emulator.inject("submit", "status_after_accept")
    assert_error(api.submit(T2I, {"prompt": "p", "enable_sync_mode": True}), 504)
    assert emulator.submissions == 1


def test_reset_on_result_then_recovers(api: Api, emulator: Emulator) -> None:
    rid = api.create(T2I, {"prompt": "p"})
    emulator.inject("result", "reset", times=2)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            api.result(rid)
    assert api.result(rid).status_code == 200


def test_slow_fault_delays_then_answers(api: Api, emulator: Emulator) -> None:
    emulator.inject("balance", "slow", delay_s=0.3)
    t0 = time.monotonic()
    assert api.s.get(f"{api.base}/api/v3/balance", timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    assert emulator.pending_faults == 0  # the one armed delay was spent on the first request
    assert api.s.get(f"{api.base}/api/v3/balance", timeout=5).status_code == 200


def test_malformed_and_wrong_shape(api: Api, emulator: Emulator) -> None:
    """200 replies a client must not trust: broken JSON, and JSON without the expected fields."""
    rid = api.create(T2I, {"prompt": "p"})
    emulator.inject("result", "malformed")
    emulator.inject("result", "wrong_shape")
    r = api.result(rid)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()
    r = api.result(rid)
    assert r.json() == {"code": 200, "message": "success", "data": {"status": 42}}
    assert "id" in api.result(rid).json()["data"]


def test_any_route_fault_hits_the_next_request(api: Api, emulator: Emulator) -> None:
    emulator.inject("any", "status", status=500)
    assert_error(api.s.get(f"{api.base}/api/v3/balance", timeout=5), 500, "internal server error")
    assert api.s.get(f"{api.base}/api/v3/balance", timeout=5).status_code == 200


def test_truncate_and_corrupt_downloads(api: Api, emulator: Emulator) -> None:
    """Truncated bodies break the read; corrupt ones arrive whole but do not decode."""
    emulator.configure(inference_s=0.05)
    (url,) = api.wait(api.create(T2I, {"prompt": "p"}))["outputs"]
    good = requests.get(url, timeout=5).content
    emulator.inject("download", "truncate")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=5)
    emulator.inject("download", "corrupt")
    bad = requests.get(url, timeout=5).content
    assert len(bad) == len(good) and bad != good and bad[:16] == good[:16]
    with pytest.raises(OSError):  # Pillow: UnidentifiedImageError or "broken data stream"
        Image.open(io.BytesIO(bad)).load()
    assert requests.get(url, timeout=5).content == good


def test_inject_rejects_impossible_rules(emulator: Emulator) -> None:
    for route, kind in (
        ("result", "truncate"),
        ("download", "reset_after_accept"),
        ("nope", "status"),
        ("any", "x"),
    ):
        with pytest.raises(ValueError):
            emulator.inject(route, kind)


# --------------------------------------------------------------------------- uploads and edits


def test_upload_stores_exact_bytes_and_serves_them(api: Api, emulator: Emulator) -> None:
    """Upload then download gives back the same bytes, without needing (or sending) the key."""
    data = png_bytes(gradient(40, 60, 10))
    r = api.upload(data, "image.png")
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 200 and body["message"] == "success"
    d = body["data"]
    assert d["type"] == "image" and d["size"] == len(data) and d["filename"] == "image.png"
    assert re.fullmatch(
        re.escape(emulator.base_url) + r"/media/images/\d{19}_[A-Za-z0-9]{8}\.png", d["download_url"]
    )
    assert emulator.uploads == [data]
    got = requests.get(d["download_url"], timeout=5)
    assert got.content == data and got.headers["Content-Type"] == "image/png"
    assert emulator.requests[-1].route == "download" and emulator.requests[-1].authorization is False
    v2 = api.s.post(f"{api.base}/api/v2/media/upload/binary", files={"file": ("b.png", data)}, timeout=5)
    assert v2.status_code == 200


def test_upload_rejects_non_images_missing_field_and_oversize(api: Api, emulator: Emulator) -> None:
    assert_error(api.upload(b"hello, not an image", "a.txt", "text/plain"), 400, "type")
    r = api.s.post(f"{api.base}/api/v3/media/upload/binary", files={"other": ("a.png", b"x")}, timeout=5)
    assert_error(r, 400, "file")
    big = png_bytes(gradient(8, 8, 0)) + b"\0" * (20 * 1024 * 1024)
    assert_error(api.upload(big), 413, "too large")
    assert emulator.uploads == []


def test_direct_upload_ticket_and_put(api: Api, emulator: Emulator) -> None:
    """The Python SDK 2.x two-step upload: ticket, then an unauthenticated PUT."""
    data = png_bytes(gradient(10, 10, 99))
    r = api.s.post(
        f"{api.base}/api/v3/media/uploads", json={"filename": "t.png", "size": len(data)}, timeout=5
    )
    d = r.json()["data"]
    put = requests.put(d["upload"]["url"], data=data, headers=d["upload"]["headers"], timeout=5)
    assert put.status_code == 200
    assert requests.get(d["download_url"], timeout=5).content == data
    assert emulator.uploads == [data]


def test_edit_output_is_inverted_input(api: Api, emulator: Emulator) -> None:
    """Edit = 255 - input, at the preferred Kontext size nearest the input's ratio (200x120 is
    5:3, nearest 1328x800), or resized to the aspect ratio when one is given."""
    emulator.configure(inference_s=0.05, output_format="png")
    src = gradient(120, 200, 30)
    url = api.upload(png_bytes(src)).json()["data"]["download_url"]
    out = api.image(api.wait(api.create(EDIT, {"prompt": "invert", "image": url}))["outputs"][0])
    assert out.shape == (800, 1328, 3)
    np.testing.assert_array_equal(out, render_edit([src], None))
    emulator.configure(edit_size="input")  # the kinder switch keeps the input's own size
    out = api.image(api.wait(api.create(EDIT, {"prompt": "invert", "image": url}))["outputs"][0])
    np.testing.assert_array_equal(out, 255 - src)
    np.testing.assert_array_equal(out, render_edit([src], None, keep_input_size=True))
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(src)).decode()
    out = api.image(
        api.wait(api.create(EDIT, {"prompt": "x", "image": data_uri, "aspect_ratio": "4:3"}))["outputs"][0]
    )
    assert out.shape == (880, 1184, 3)
    np.testing.assert_array_equal(out, render_edit([src], "4:3"))


def test_multi_joins_references_in_order(api: Api, emulator: Emulator) -> None:
    """Multi output = references side by side in the given order, inverted: order is observable.
    The input's own size (edit_size="input") keeps every pixel checkable; the default size is
    tested in test_edit_size_without_a_ratio_is_the_nearest_kontext_resolution."""
    emulator.configure(inference_s=0.05, output_format="png", edit_size="input")
    a, b = gradient(100, 80, 0), gradient(50, 120, 255)
    ua = api.upload(png_bytes(a)).json()["data"]["download_url"]
    ub = api.upload(png_bytes(b)).json()["data"]["download_url"]
    ab = api.image(api.wait(api.create(MULTI, {"prompt": "p", "images": [ua, ub]}))["outputs"][0])
    ba = api.image(api.wait(api.create(MULTI, {"prompt": "p", "images": [ub, ua]}))["outputs"][0])
    np.testing.assert_array_equal(ab, render_edit([a, b], None, keep_input_size=True))
    np.testing.assert_array_equal(ba, render_edit([b, a], None, keep_input_size=True))
    assert ab.shape == (100, 80 + 240, 3) and ba.shape == (50, 120 + 40, 3)
    np.testing.assert_array_equal(ab[:, :80], 255 - a)
    sized = api.image(
        api.wait(api.create(MULTI, {"prompt": "p", "images": [ua, ub], "aspect_ratio": "2:3"}))["outputs"][0]
    )
    assert sized.shape == (1248, 832, 3)


@pytest.mark.parametrize(
    "image",
    ["https://example.com/cat.png", "http://127.0.0.1:1/media/images/none.png", "data:image/png;base64,AAAA"],
)
def test_unreachable_image_fails_the_task_with_1402(api: Api, emulator: Emulator, image: str) -> None:
    """The API accepts the task, then fails it when it cannot fetch the image (code 1402)."""
    emulator.configure(inference_s=0.05)
    data = api.wait(api.create(EDIT, {"prompt": "p", "image": image}))
    assert (data["status"], data["code"]) == ("failed", 1402)
    assert data["error"] == "Failed to download image from the provided URL."
    assert data["outputs"] == []


# --------------------------------------------------------------------------- control, protocol, lifecycle


def test_control_endpoints_drive_another_process(api: Api, emulator: Emulator) -> None:
    """Benchmarks and the demo steer the emulator over HTTP, with no key."""
    base = emulator.base_url
    assert requests.post(f"{base}/_emulator/config", json={"inference_s": 0.05}, timeout=5).json() == {
        "ok": True
    }
    requests.post(
        f"{base}/_emulator/faults", json={"route": "submit", "kind": "status", "status": 503}, timeout=5
    )
    requests.post(f"{base}/_emulator/tasks", json={"fail": "nope"}, timeout=5)
    assert api.submit(T2I, {"prompt": "p"}).status_code == 503
    assert api.wait(api.create(T2I, {"prompt": "p"}))["status"] == "failed"
    stats = requests.get(f"{base}/_emulator/stats", timeout=5).json()
    assert stats["submissions"] == 1 and stats["uploads"] == 0
    assert stats["balance"] == pytest.approx(100.0 - 0.08)
    assert [r["status"] for r in stats["requests"]][:2] == [503, 200]
    assert set(stats["requests"][0]) == {"method", "path", "route", "status", "authorization", "t", "peer"}
    bad = requests.post(f"{base}/_emulator/faults", json={"route": "x", "kind": "status"}, timeout=5)
    assert bad.status_code == 400
    assert requests.post(f"{base}/_emulator/reset", timeout=5).status_code == 200
    assert requests.get(f"{base}/_emulator/stats", timeout=5).json()["requests"] == []
    assert emulator.submissions == 0 and emulator.balance == 100.0


def test_keep_alive_and_content_length(api: Api, emulator: Emulator) -> None:
    """One TCP connection carries many requests, and every reply states its length."""
    replies = [api.s.get(f"{api.base}/api/v3/balance", timeout=5) for _ in range(3)]
    replies.append(api.submit("bad/model", {}))
    replies.append(requests.get(f"{api.base}/cdn/output/none.jpeg", timeout=5))
    assert all("Content-Length" in r.headers for r in replies)
    assert all(r.headers.get("Connection", "").lower() != "close" for r in replies)
    assert replies[-1].status_code == 404


def test_stop_is_idempotent_and_context_manager(api_key: str) -> None:
    with Emulator(api_keys=(api_key,)) as emu:
        url = emu.base_url
        assert requests.get(
            f"{url}/api/v3/balance", headers={"Authorization": f"Bearer {api_key}"}, timeout=5
        ).ok
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/v3/balance", timeout=2)


def test_cli_runs_until_sigterm() -> None:
    """`python -m emulator --port 0` prints its URL (not the key), serves, and exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--inference-s", "0.05", "--api-key", "cli-secret"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.fullmatch(
            r"WaveSpeed emulator listening on (http://127\.0\.0\.1:\d+) \(api key: 1 accepted\)\n", line
        )
        assert m, line
        assert "cli-secret" not in line
        r = requests.get(
            f"{m.group(1)}/api/v3/balance", headers={"Authorization": "Bearer cli-secret"}, timeout=5
        )
        assert r.json()["data"]["balance"] == 100.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------- structure (issue 14)

EMULATOR_DIR = REPO_ROOT / "emulator"
# The modules that answer requests: they may reach the state only through backend.Backend.
REQUEST_SIDE = ("routes/handler.py", "routes/wire.py", "behaviour/fault_acts.py", "routes/upload_routes.py")


def test_request_side_never_imports_the_server_back() -> None:
    """Import cycles and module sizes are checked for the whole pack in tests/tooling/test_layout.py."""
    arrows = layout.import_arrows()
    for name in REQUEST_SIDE:
        module = "emulator." + name.removesuffix(".py").replace("/", ".")
        assert (module, "emulator.server") not in arrows, f"{name} imports server.py back"


def test_request_handling_uses_only_the_public_backend() -> None:
    """The handler side never calls a private member of the state it answers from."""
    private: list[str] = []
    for name in REQUEST_SIDE:
        tree = layout.parse_source(EMULATOR_DIR / name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in ("backend", "emu", "emulator")
            ):
                private.append(f"{name}:{node.lineno} .{node.value.attr}.{node.attr}")
    assert private == []
