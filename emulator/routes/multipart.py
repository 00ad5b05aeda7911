"""multipart/form-data parsing with the stdlib email parser (the `cgi` module is gone in 3.13)."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass(frozen=True)
class FormPart:
    """One form field: its name, optional filename and content type, and raw bytes."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """Split a multipart/form-data body into its fields (first occurrence of a name wins)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError("Content-Type must be multipart/form-data")
    if "boundary=" not in content_type:
        raise MultipartError("multipart Content-Type has no boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise MultipartError("body is not multipart")
    fields: dict[str, FormPart] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or name in fields:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        fields[name] = FormPart(
            name=name,
            filename=part.get_filename(),
            content_type=part.get_content_type(),
            data=payload,
        )
    return fields
