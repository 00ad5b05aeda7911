"""Hostile inputs (issue 11, class 7 and the input half of class 8): refused in one typed line
before any request, upload or charge, and output batches that would exhaust memory refused
before anything is allocated.

Node tests call the pack's node functions against the emulator over real loopback sockets and
check that the emulator saw nothing: no request, no upload, no accepted submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import io
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import requests
import torch
from PIL import Image
from wavespeed_kontext_pack.wavespeed.api.kontext_request import KontextRequest
from wavespeed_kontext_pack.wavespeed.api.models import model_for
from wavespeed_kontext_pack.wavespeed.core.errors import ImageDecodeError, InvalidRequestError
from wavespeed_kontext_pack.wavespeed.images import batch_plan
from wavespeed_kontext_pack.wavespeed.settings.reference_urls import check_image_url, unreachable_reason

from emulator import Emulator
from tests.support.hostile_server import png_header as _png_header
from tests.support.node_calls import edit as _edit, generate as _generate, image as _image, multi as _multi

MODEL_EDIT = model_for("edit").id

pytestmark = pytest.mark.usefixtures("fresh_upload_cache")


def _refused(pack: ModuleType, emulator: Emulator, call: Any, *fragments: str) -> str:
    """Run a node call that must be refused locally; return the one-line message."""
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as info:
        asyncio.run(call)
    text = str(info.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text
    assert emulator.requests == [] and emulator.uploads == [] and emulator.submissions == 0
    return text


# =========================================================================== class 8: images


def test_edit_refuses_an_image_full_of_nan_before_any_upload(pack: ModuleType, pack_env: Emulator) -> None:
    nan = torch.full((1, 96, 128, 3), float("nan"))
    _refused(pack, pack_env, _edit(image=nan), "image has 36864 NaN values", "sent as black")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_edit_refuses_one_non_finite_pixel(pack: ModuleType, pack_env: Emulator, bad: float) -> None:
    image = _image()
    image[0, 50, 60, 1] = bad
    kind = "NaN" if bad != bad else "infinite"
    _refused(pack, pack_env, _edit(image=image), f"1 {kind} values")


def test_multi_refuses_nan_in_any_batch_item(pack: ModuleType, pack_env: Emulator) -> None:
    batch = _image(batch=3)
    batch[2, 0, 0, 0] = float("nan")
    _refused(pack, pack_env, _multi(image_1=_image(seed=1), image_2=batch), "image_2 (batch item 3)")


def test_edit_only_checks_the_image_it_sends(pack: ModuleType, pack_env: Emulator) -> None:
    """Edit sends the first image of a batch; NaN in the others costs nothing and is no reason to refuse."""
    batch = _image(batch=2)
    batch[1] = float("nan")
    asyncio.run(_edit(image=batch))
    assert pack_env.submissions == 1 and len(pack_env.uploads) == 1


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (_image() * 255.0, "up to 255.0"),
        (_image() - 2.0, "down to -2.0"),
        ((_image() * 255.0).to(torch.uint8), "up to 255.0"),
    ],
    ids=["0..255 scale", "negative", "uint8"],
)
def test_edit_refuses_values_far_outside_0_1(
    pack: ModuleType, pack_env: Emulator, image: torch.Tensor, fragment: str
) -> None:
    """An IMAGE holds 0..1; 0..255 data would be clipped to a white picture and paid for."""
    _refused(pack, pack_env, _edit(image=image), fragment, "0..1")


def test_slight_overshoot_is_sent_clipped(pack: ModuleType, pack_env: Emulator) -> None:
    """Resampling and sharpening overshoot a little: that is a picture, sent clipped to 0..1."""
    image = _image() * 1.2 - 0.1
    asyncio.run(_edit(image=image))
    assert pack_env.submissions == 1


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (torch.zeros(0, 96, 96, 3), "empty batch"),
        (torch.rand(1, 1, 1, 3), "1x1 px"),
        (torch.rand(1, 1, 100_000, 3), "100000x1 px"),
        (torch.rand(1, 100_000, 1, 3), "1x100000 px"),
        (torch.rand(96, 96), "shape [96, 96]"),
        (np.zeros((1, 96, 96, 3), np.float32), "is not an IMAGE"),
    ],
    ids=["batch of 0", "1x1", "100000x1", "1x100000", "2-d", "numpy"],
)
def test_edit_refuses_degenerate_images(
    pack: ModuleType, pack_env: Emulator, image: Any, fragment: str
) -> None:
    _refused(pack, pack_env, _edit(image=image), fragment)


# =========================================================================== class 8: prompts


INVISIBLE_PROMPTS = {
    "zero width space": "\u200b\u200b\u200b",
    "word joiner": "\u2060",
    "bom": "\ufeff",
    "combining marks only": "\u0301\u0308\u20dd",
    "hangul filler": "\u3164\u3164",
    "braille blank": "\u2800",
    "no-break and em spaces": "\u00a0\u2003\u3000",
    "bidi overrides": "\u202e\u202c\u2066",
    "tag characters": "\U000e0041\U000e0042",
    "variation selectors": "\ufe0f\U000e0100",
    "controls": "\x00\x07\x1b\x7f",
    "line and paragraph separators": "\u2028\u2029\u0085",
    "mixed": " \u200b\n\u2060\t\ufeff\u0301 ",
}


@pytest.mark.parametrize("prompt", list(INVISIBLE_PROMPTS.values()), ids=list(INVISIBLE_PROMPTS))
def test_generate_refuses_a_prompt_with_nothing_visible(
    pack: ModuleType, pack_env: Emulator, prompt: str
) -> None:
    _refused(pack, pack_env, _generate(prompt), "prompt is empty")


@pytest.mark.parametrize(
    "prompt",
    ["a\u200b", "\u732b", "\U0001f98a", "e\u0301", "\u2800a", "\ue000 private use"],
    ids=["text+zwsp", "cjk", "emoji", "decomposed e", "braille+letter", "private use"],
)
def test_prompts_with_something_visible_pass(prompt: str) -> None:
    assert KontextRequest(prompt=prompt).validate(api_base=None)


@pytest.mark.parametrize(
    "prompt", ["a cat \ud800", "\udfff", "\ud83e half an emoji"], ids=["high", "low", "cut"]
)
def test_generate_refuses_a_lone_surrogate_with_a_typed_line(
    pack: ModuleType, pack_env: Emulator, prompt: str
) -> None:
    text = _refused(pack, pack_env, _generate(prompt), "unpaired surrogate", "retype")
    assert "\\u" not in text  # the code point is named, not dumped


def test_edit_refuses_an_invisible_prompt_before_uploading(pack: ModuleType, pack_env: Emulator) -> None:
    _refused(pack, pack_env, _edit("\u200b\u200c\u200d", image=_image()), "prompt is empty")


# =========================================================================== class 8: other widgets


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"guidance_scale": float("nan")}, "guidance_scale nan"),
        ({"guidance_scale": float("inf")}, "guidance_scale inf"),
        ({"guidance_scale": "3.5"}, "guidance_scale '3.5'"),
        ({"seed": 5.0}, "seed must be a whole number, got float"),
        ({"seed": "5"}, "seed must be a whole number, got str"),
        ({"seed": True}, "seed must be a whole number, got bool"),
        ({"seed": np.int64(5)}, "seed must be a whole number, got int64"),
        ({"seed": 2**31}, "seed 2147483648 is out of range"),
        ({"seed": -2}, "seed -2 is out of range"),
        ({"sync_mode": "yes"}, "enable_sync_mode"),
        ({"aspect_ratio": ["1:1"]}, "aspect_ratio ['1:1']"),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(f"{k}={v[k]!r}" for k in v),
)
def test_generate_refuses_absurd_widget_values(
    pack: ModuleType, pack_env: Emulator, kwargs: dict[str, Any], fragment: str
) -> None:
    _refused(pack, pack_env, _generate("a red fox", **kwargs), fragment)


def test_generate_refuses_a_prompt_that_is_not_text(pack: ModuleType, pack_env: Emulator) -> None:
    _refused(pack, pack_env, _generate(["a red fox"]), "prompt must be text, got list")  # type: ignore[arg-type]


# =========================================================================== class 8: image URLs


LOCAL_URLS = {
    "localhost": "http://localhost/a.png",
    "localhost trailing dot": "http://LOCALHOST./a.png",
    "sub.localhost": "https://app.localhost/a.png",
    "mdns .local": "http://printer.local/a.png",
    ".internal": "http://metadata.google.internal/computeMetadata/v1/",
    ".home.arpa": "http://nas.home.arpa/a.png",
    "single label": "http://nas/a.png",
    "127.0.0.1": "http://127.0.0.1/a.png",
    "127.0.0.1 other port": "http://127.0.0.1:8188/view?filename=a.png",
    "decimal": "http://2130706433/a.png",
    "hex": "http://0x7f.1/a.png",
    "short": "http://127.1/a.png",
    "octal": "http://0177.0.0.1/a.png",
    "percent-encoded": "http://%31%32%37.0.0.1/a.png",
    "ipv6 loopback": "http://[::1]/a.png",
    "ipv4-mapped": "http://[::ffff:127.0.0.1]/a.png",
    "ipv4-mapped hex": "http://[::ffff:7f00:1]/a.png",
    "6to4 of loopback": "http://[2002:7f00:1::]/a.png",
    "nat64 of private": "http://[64:ff9b::a00:1]/a.png",
    "ipv6 zone id": "http://[fe80::1%25eth0]/a.png",
    "ipv6 unique local": "http://[fd12:3456::1]/a.png",
    "10/8": "http://10.1.2.3/a.png",
    "172.16/12": "https://172.31.255.1/a.png",
    "192.168/16": "http://192.168.1.10/a.png",
    "link-local metadata": "http://169.254.169.254/latest/meta-data/",
    "cgnat": "http://100.64.0.1/a.png",
    "multicast": "http://224.0.0.251/a.png",
    "unspecified": "http://0.0.0.0/a.png",
    "zero": "http://0/a.png",
    "broadcast": "http://255.255.255.255/a.png",
    "reserved": "http://240.0.0.1/a.png",
    "documentation": "http://192.0.2.1/a.png",
}

AMBIGUOUS_URLS = {
    "userinfo": "http://user@example.com/a.png",
    "userinfo to loopback": "http://example.com@127.0.0.1/a.png",
    "empty userinfo": "http://@example.com/a.png",
    "password": "https://user:secret@example.com/a.png",
    "password in a malformed url": "https://user:secret@exa mple.com/a.png",
    "backslash": "http://127.0.0.1\\@example.com/a.png",
    "zero-width in host": "https://exa\u200bmple.com/a.png",
    "tab": "https://example.com/\ta.png",
    "lone surrogate": "https://example.com/\ud800.png",
    "bad port": "https://example.com:99999/a.png",
    "not a tld": "http://1.2.3.999/a.png",
    "odd spelling of a public address": "http://0x08080808/a.png",
    "ftp": "ftp://example.com/a.png",
    "file": "file:///etc/passwd",
    "gopher": "gopher://example.com/a.png",
    "scheme-relative": "//example.com/a.png",
    "too long": "https://example.com/" + "a" * 9000,
}


@pytest.mark.parametrize("url", list(LOCAL_URLS.values()), ids=list(LOCAL_URLS))
def test_edit_refuses_a_local_image_url_before_any_request(
    pack: ModuleType, pack_env: Emulator, url: str
) -> None:
    text = _refused(
        pack, pack_env, _edit(image_url=url), "image_url line 1", "WaveSpeed's servers cannot fetch"
    )
    assert "connect the image to an IMAGE input" in text and "public https URL" in text


@pytest.mark.parametrize("url", list(AMBIGUOUS_URLS.values()), ids=list(AMBIGUOUS_URLS))
def test_edit_refuses_an_ambiguous_or_non_http_url(pack: ModuleType, pack_env: Emulator, url: str) -> None:
    text = _refused(pack, pack_env, _edit(image_url=url), "image_url line 1")
    assert "secret" not in text


def test_an_odd_spelling_of_a_public_address_says_how_to_write_it(
    pack: ModuleType, pack_env: Emulator
) -> None:
    _refused(pack, pack_env, _edit(image_url="http://0x08080808/a.png"), "write it as 8.8.8.8")


def test_multi_refuses_a_local_url_among_public_ones(pack: ModuleType, pack_env: Emulator) -> None:
    urls = "https://example.com/a.png\nhttp://[::1]:8188/b.png\nhttps://example.org/c.png"
    _refused(pack, pack_env, _multi(image_1=_image(), image_urls=urls), "image_urls line 2", "[::1]")


def test_only_the_configured_apis_own_origin_is_allowed_locally(pack: ModuleType, pack_env: Emulator) -> None:
    """The emulator serves its own files, so its origin passes (chained edits); its neighbours do not."""
    base = pack_env.base_url
    assert check_image_url(f"{base}/cdn/output/x.png", "image", api_base=base)
    port = int(base.rsplit(":", 1)[1])
    for url in (
        f"http://127.0.0.1:{port + 1}/x.png",
        f"http://localhost:{port}/x.png",
        f"https://127.0.0.1:{port}/x.png",
    ):
        assert unreachable_reason(url, api_base=base) is not None, url
    _refused(pack, pack_env, _edit(image_url=f"http://127.0.0.1:{port + 1}/x.png"), "loopback")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "http://example.com/b.jpg",
        "https://d11ewybssaphwx.cloudfront.net/output/x-u1_y.jpg",
        "https://8.8.8.8/a.png",
        "https://[2606:4700:4700::1111]/a.png",
        "https://b\u00fccher.de/a.png",
        "https://cdn.example.com:8443/a.png?sig=a@b&x=1#frag",
    ],
)
def test_public_urls_pass(url: str) -> None:
    assert unreachable_reason(url, api_base="https://api.wavespeed.ai") is None


def test_the_library_path_refuses_too(emulator: Emulator, api_key: str) -> None:
    """KontextRequest.validate runs in client.submit: the same refusal without the node layer."""
    from wavespeed_kontext_pack.wavespeed.net.client import WaveSpeedClient

    with (
        WaveSpeedClient(api_key, emulator.base_url) as client,
        pytest.raises(InvalidRequestError, match="image points at 10.0.0.1"),
    ):
        client.submit(KontextRequest(prompt="p", model=MODEL_EDIT, image="http://10.0.0.1/a.png"))
    assert emulator.requests == [] and emulator.submissions == 0


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        ("https://example.com/a.png", "images must be a list of URLs, got str"),
        (None, "images must be a list of URLs, got NoneType"),
        (("https://example.com/a.png", 7), "reference image 2 must be a URL string, got int"),
    ],
    ids=["str", "none", "non-str item"],
)
def test_library_multi_refuses_malformed_reference_lists(images: Any, fragment: str) -> None:
    """Typed one-line errors, not AttributeError from a str method on a non-str."""
    with pytest.raises(InvalidRequestError, match=fragment):
        KontextRequest(prompt="p", model="wavespeed-ai/flux-kontext-max/multi", images=images).validate()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"hi")

    def log_message(self, *args: Any) -> None:
        pass


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@pytest.fixture
def loopback_servers() -> Iterator[tuple[int, int | None]]:
    """A tiny HTTP server on 127.0.0.1 and, if the host has IPv6, one on [::1]."""
    servers: list[http.server.ThreadingHTTPServer] = [
        http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    ]
    with contextlib.suppress(OSError):  # no IPv6 on this host
        servers.append(_Server6(("::1", 0), _Hello))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield servers[0].server_address[1], servers[1].server_address[1] if len(servers) > 1 else None
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "0x7f000001",
        "%31%32%37.0.0.1",
        "localhost",
    ],
)
def test_every_refused_ipv4_spelling_really_reaches_loopback(
    loopback_servers: tuple[int, int | None], spelling: str
) -> None:
    """The spellings are not theoretical: requests connects each one to 127.0.0.1."""
    port, _ = loopback_servers
    url = f"http://{spelling}:{port}/a.png"
    assert requests.get(url, timeout=5).content == b"hi"
    assert unreachable_reason(url, api_base="https://api.wavespeed.ai") is not None


@pytest.mark.parametrize("spelling", ["[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]"])
def test_every_refused_ipv6_spelling_really_reaches_loopback(
    loopback_servers: tuple[int, int | None], spelling: str
) -> None:
    port4, port6 = loopback_servers
    if port6 is None:
        pytest.skip("no IPv6 loopback on this host")
    port = port4 if "ffff" in spelling else port6
    url = f"http://{spelling}:{port}/a.png"
    try:
        assert requests.get(url, timeout=5).content == b"hi"
    except requests.ConnectionError:
        pytest.skip(f"{spelling} does not connect on this host")
    assert unreachable_reason(url, api_base="https://api.wavespeed.ai") is not None


# =========================================================================== class 7: memory


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_padded_canvas_over_the_pixel_limit_is_refused_before_allocating() -> None:
    """40000x1000 and 1000x40000 are each at the pixel limit; padded together they ask for 35.8 GiB."""
    blobs = [_png_header(40_000, 1_000), _png_header(1_000, 40_000)]
    tracemalloc.start()
    try:
        with pytest.raises(batch_plan.OutputsTooLargeError) as info:
            batch_plan.images_to_tensor(blobs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text = str(info.value)
    assert "2 x 40000x40000 batch (35.8 GiB" in text and "40000x1000, 1000x40000" in text
    assert "image_urls" in text and "\n" not in text
    assert peak < 16 * 2**20  # nothing near the canvas was ever allocated


def test_a_batch_over_the_bytes_budget_is_refused_before_decoding() -> None:
    """Eight same-size outputs, each under the pixel limit, would be 4 GiB of float32."""
    blobs = [_png_header(6_000, 6_000)] * 8
    with pytest.raises(batch_plan.OutputsTooLargeError, match=r"8 x 6000x6000 batch \(3.2 GiB"):
        batch_plan.images_to_tensor(blobs)


def test_the_limits_are_parameters_and_real_batches_pass() -> None:
    blobs = [_png(64, 48), _png(48, 64)]
    assert tuple(batch_plan.images_to_tensor(blobs).shape) == (2, 64, 64, 3)
    with pytest.raises(batch_plan.OutputsTooLargeError, match="2 x 64x64"):
        batch_plan.images_to_tensor(blobs, max_pixels=64 * 63)
    with pytest.raises(batch_plan.OutputsTooLargeError):
        batch_plan.images_to_tensor(blobs, max_bytes=2 * 64 * 64 * 12 - 1)
    assert tuple(batch_plan.images_to_tensor(blobs, max_bytes=2 * 64 * 64 * 12).shape) == (2, 64, 64, 3)


def test_more_outputs_than_the_cap_are_refused_before_reading_any_header() -> None:
    assert batch_plan.MAX_OUTPUTS >= 4  # the API's own maximum (num_images 1..4) always fits
    with pytest.raises(
        batch_plan.OutputsTooLargeError, match=f"9 outputs, more than the {batch_plan.MAX_OUTPUTS}"
    ):
        batch_plan.images_to_tensor([b"not even an image"] * (batch_plan.MAX_OUTPUTS + 1))
    assert (
        batch_plan.images_to_tensor([_png(8, 8)] * batch_plan.MAX_OUTPUTS).shape[0] == batch_plan.MAX_OUTPUTS
    )
    batch_plan.check_output_count(batch_plan.MAX_OUTPUTS)
    with pytest.raises(batch_plan.OutputsTooLargeError):
        batch_plan.check_output_count(batch_plan.MAX_OUTPUTS + 1)


def test_too_large_is_an_image_decode_error() -> None:
    """Callers that handle ImageDecodeError (Poll Result) handle this one too."""
    assert issubclass(batch_plan.OutputsTooLargeError, ImageDecodeError)
