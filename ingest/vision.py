"""Images in chat messages: both part forms in, OpenAI's nested form out, data URIs checked.

Adaptive sends `{"type":"image_url","image_url":"<url>"}`, OpenAI sends
`{"type":"image_url","image_url":{"url":"<url>"}}`. Data URIs of JPEG, PNG, WebP or GIF up to
MAX_IMAGE_BYTES are decoded, their magic bytes and structure checked; each becomes an
attachment (by SHA-256) and the logged message refers to it as `attachment://sha256/<hex>`.
http(s) URLs are passed through unchanged. Anything else is a 400 that names the problem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from ingest.errors import BadRequest
from store.interactions import AttachmentRecord

MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")


@dataclass
class PreparedMessages:
    """Messages for the upstream, messages for the log, and the images found."""

    upstream: list[dict[str, Any]]
    logged: list[dict[str, Any]]
    attachments: list[AttachmentRecord] = field(default_factory=list)
    image_count: int = 0


def sniff_image_type(data: bytes) -> str | None:
    """The image MIME type the bytes really are (by magic number), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def image_defect(data: bytes, mime: str) -> str | None:
    """Why DATA is not a whole image of type MIME, or None. Structure only (no decoding, so no
    imaging library and no decompression bomb): the magic bytes followed by garbage were stored
    as images. PNG: an IHDR chunk first with a valid CRC and a non-zero size, the IEND chunk
    last; JPEG: start and end of image markers; GIF: a screen descriptor and the trailer;
    WebP: the RIFF size matches and a VP8 chunk follows."""
    if mime == "image/png":
        if len(data) < 8 + 25 + 12 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
            return "its first chunk is not a PNG header (IHDR)"
        (crc,) = struct.unpack(">I", data[29:33])
        width, height = struct.unpack(">II", data[16:24])
        if zlib.crc32(data[12:29]) != crc or not width or not height:
            return "its PNG header is damaged"
        if not data.endswith(_PNG_END):
            return "it does not end with the PNG end chunk (IEND): cut short or padded"
        return None
    if mime == "image/jpeg":
        return None if data.rstrip(b"\x00").endswith(b"\xff\xd9") else "it has no JPEG end marker"
    if mime == "image/gif":
        return None if len(data) >= 14 and data.endswith(b"\x3b") else "it has no GIF trailer"
    if mime == "image/webp":
        (size,) = struct.unpack("<I", data[4:8])
        if size + 8 not in (len(data), len(data) - 1) or data[12:15] != b"VP8":
            return "its RIFF size or VP8 chunk is wrong"
        return None
    return "unsupported type"


def decode_data_uri(url: str, *, param: str) -> tuple[AttachmentRecord, str]:
    """Check a `data:` image URI; the attachment record and its `attachment://` reference."""
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise BadRequest("image data URI must look like data:image/png;base64,<data>", param=param)
    mime = header[len("data:") : -len(";base64")].strip().lower()
    if mime == "image/jpg":
        mime = "image/jpeg"
    if mime not in IMAGE_TYPES:
        raise BadRequest(
            f"unsupported image type {mime or '(none)'!r}: send JPEG, PNG, WebP or GIF",
            param=param,
        )
    if len(payload) > (MAX_IMAGE_BYTES * 4) // 3 + 4:
        raise BadRequest(f"image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"image data is not valid base64 ({exc})", param=param) from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise BadRequest(f"image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB", param=param)
    actual = sniff_image_type(data)
    if actual != mime:
        found = f"a {actual} image" if actual else "not an image"
        raise BadRequest(f"image declared as {mime} is {found}", param=param)
    defect = image_defect(data, mime)
    if defect is not None:
        raise BadRequest(f"image declared as {mime} is not a whole image: {defect}", param=param)
    digest = hashlib.sha256(data).hexdigest()
    record = AttachmentRecord(sha256=digest, mime_type=mime, size_bytes=len(data), data_b64=payload)
    return record, f"attachment://sha256/{digest}"


def _image_url(part: dict[str, Any], param: str) -> tuple[str, dict[str, Any]]:
    value = part.get("image_url")
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        extra = {key: item for key, item in value.items() if key != "url"}
        return value["url"], extra
    raise BadRequest(
        'image_url must be a URL string or {"url": "<url>"}', param=f"{param}.image_url"
    )


def prepare_messages(messages: list[dict[str, Any]], *, multimodal: bool) -> PreparedMessages:
    """Normalise image parts for the upstream and the log; 400 on any bad image."""
    if all(isinstance(message.get("content"), str | None) for message in messages):
        return PreparedMessages(upstream=messages, logged=messages)
    prepared = PreparedMessages(upstream=[], logged=[])
    seen: set[str] = set()
    for m_index, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            prepared.upstream.append(message)
            prepared.logged.append(message)
            continue
        upstream_parts: list[dict[str, Any]] = []
        logged_parts: list[dict[str, Any]] = []
        for p_index, part in enumerate(content):
            param = f"messages.{m_index}.content.{p_index}"
            kind = part.get("type")
            if kind != "image_url":
                upstream_parts.append(part)
                logged_parts.append(part)
                continue
            url, extra = _image_url(part, param)
            if not multimodal:
                raise BadRequest(
                    "this model does not accept images (it is not marked multimodal); "
                    "send text only or route to a model added with `--multimodal`",
                    param=param,
                )
            prepared.image_count += 1
            upstream_parts.append({"type": "image_url", "image_url": {"url": url, **extra}})
            if url.startswith("data:"):
                record, reference = decode_data_uri(url, param=f"{param}.image_url")
                if record["sha256"] not in seen:
                    seen.add(record["sha256"])
                    prepared.attachments.append(record)
                logged_url = reference
            elif url.startswith(("http://", "https://")):
                logged_url = url
            else:
                raise BadRequest(
                    "image URL must be a data: URI or an http(s) URL", param=f"{param}.image_url"
                )
            logged_parts.append({"type": "image_url", "image_url": {"url": logged_url}})
        prepared.upstream.append({**message, "content": upstream_parts})
        prepared.logged.append({**message, "content": logged_parts})
    return prepared
