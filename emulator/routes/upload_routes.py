"""The upload routes: the binary multipart upload and the two-step direct upload (ticket, then PUT).

Either way the file ends up served from /media/images/ on this server, counted in Emulator.uploads.
"""

from __future__ import annotations

import re
import secrets
import string
import time

from ..backend import MAX_UPLOAD_BYTES, UploadTicket
from ..behaviour.imagegen import UPLOAD_FORMATS, sniff_image_format
from ..behaviour.model_registry import ValidationError
from .multipart import MultipartError, parse_multipart
from .wire import ReplyHandler

_ALNUM = string.ascii_letters + string.digits
UPLOAD_PREFIX = "/_upload/"


def _media_path(ext: str) -> str:
    """A fresh, unguessable /media/images/ path like the API's (time_ns + 8 random characters)."""
    name = f"{time.time_ns()}_{''.join(secrets.choice(_ALNUM) for _ in range(8))}.{ext}"
    return f"/media/images/{name}"


def _file_too_large(h: ReplyHandler) -> None:
    h.reply_error(413, f"File too large: the maximum upload size is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")


def upload_binary(h: ReplyHandler) -> None:
    """POST media/upload/binary: a multipart 'file' field, sniffed, stored and linked."""
    try:
        fields = parse_multipart(h.headers.get("Content-Type", ""), h.body)
    except MultipartError as exc:
        h.reply_error(400, f"Invalid upload: {exc}")
        return
    part = fields.get("file")
    if part is None:
        h.reply_error(400, "Invalid upload: the multipart field 'file' is required")
        return
    if len(part.data) > MAX_UPLOAD_BYTES:
        _file_too_large(h)
        return
    fmt = sniff_image_format(part.data)
    if fmt is None:
        h.reply_error(400, "Unsupported file type: upload a JPEG, PNG, WebP, GIF, BMP or TIFF image")
        return
    ext, mime = UPLOAD_FORMATS[fmt]
    media_path = _media_path(ext)
    h.backend.add_upload(media_path, part.data, mime)
    h.reply_ok(
        {
            "type": "image",
            "download_url": f"{h.public_base()}{media_path}",
            "filename": part.filename or media_path.rsplit("/", 1)[-1],
            "size": len(part.data),
        }
    )


def upload_ticket(h: ReplyHandler) -> None:
    """Step 1 of the direct upload (Python SDK 2.x): hand out a PUT URL on this server."""
    try:
        body = h.json_body()
    except ValidationError as exc:
        h.reply_error(400, str(exc))
        return
    if not isinstance(body, dict) or not isinstance(body.get("filename"), str) or not body["filename"]:
        h.reply_error(400, "filename is required")
        return
    size = body.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        h.reply_error(400, "size must be a non-negative integer")
        return
    if size > MAX_UPLOAD_BYTES:
        _file_too_large(h)
        return
    filename = body["filename"]
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
    if not re.fullmatch(r"[a-z0-9]{1,5}", ext):
        ext = "bin"
    ctype = body.get("content_type")
    if not isinstance(ctype, str) or not ctype:
        ctype = next((m for e, m in UPLOAD_FORMATS.values() if e == ext), "application/octet-stream")
    token = secrets.token_hex(16)
    media_path = _media_path(ext)
    h.backend.add_ticket(token, UploadTicket(media_path, ctype))
    base = h.public_base()
    h.reply_ok(
        {
            "type": "image" if ctype.startswith("image/") else "file",
            "download_url": f"{base}{media_path}",
            "filename": filename,
            "size": size,
            "upload": {
                "method": "PUT",
                "url": f"{base}{UPLOAD_PREFIX}{token}",
                "headers": {"Content-Type": ctype},
            },
        }
    )


def upload_put(h: ReplyHandler, path: str) -> None:
    """Step 2 of the direct upload: the presigned PUT (no Authorization expected)."""
    ticket = h.backend.take_ticket(path[len(UPLOAD_PREFIX) :])
    if ticket is None:
        h.reply_error(404, "upload URL unknown or already used")
        return
    h.backend.add_upload(ticket.path, h.body, ticket.content_type)
    h.reply(200, b"", "text/plain")
