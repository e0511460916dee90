"""Image parts: both forms normalised for the upstream, data URIs checked and made attachments."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from ingest.errors import BadRequest
from ingest.vision import prepare_messages, sniff_image_type

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (PNG, "image/png"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7", None),
    ],
)
def test_magic_bytes_reveal_the_real_image_type(data: bytes, mime: str | None) -> None:
    assert sniff_image_type(data) == mime


def test_text_only_messages_pass_through_untouched() -> None:
    messages = [{"role": "user", "content": "hi"}]
    prepared = prepare_messages(messages, multimodal=False)
    assert prepared.upstream is messages and prepared.logged is messages
    assert prepared.attachments == []


def test_both_image_forms_go_upstream_nested_and_are_logged_as_attachments() -> None:
    uri = f"data:image/png;base64,{PNG_B64}"
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "two of the same"},
                {"type": "image_url", "image_url": uri},
                {"type": "image_url", "image_url": {"url": uri, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
            ],
        }
    ]
    prepared = prepare_messages(messages, multimodal=True)
    upstream_parts = prepared.upstream[0]["content"]
    assert upstream_parts[1] == {"type": "image_url", "image_url": {"url": uri}}
    assert upstream_parts[2] == {"type": "image_url", "image_url": {"url": uri, "detail": "low"}}
    digest = hashlib.sha256(PNG).hexdigest()
    logged_urls = [part["image_url"]["url"] for part in prepared.logged[0]["content"][1:]]
    assert logged_urls == [
        f"attachment://sha256/{digest}",
        f"attachment://sha256/{digest}",
        "https://example.org/cat.png",
    ]
    assert prepared.attachments == [
        {"sha256": digest, "mime_type": "image/png", "size_bytes": len(PNG), "data_b64": PNG_B64}
    ]
    assert prepared.image_count == 3
    assert messages[0]["content"][1]["image_url"] == uri  # the request itself is not modified


def test_an_image_for_a_text_only_model_names_the_part() -> None:
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]}
    ]
    with pytest.raises(BadRequest, match="not marked multimodal") as raised:
        prepare_messages(messages, multimodal=False)
    assert raised.value.param == "messages.0.content.0"


@pytest.mark.parametrize(
    ("data", "mime", "why"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "image/png", "not a PNG header"),
        (PNG[:16] + b"\x00\x00\x00\x02" + PNG[20:], "image/png", "header is damaged"),
        (PNG[:-12], "image/png", "end chunk"),
        (PNG + b"\x00" * 8, "image/png", "end chunk"),
        (b"\xff\xd8\xff\xe0" + b"x" * 40, "image/jpeg", "JPEG end marker"),
        (b"GIF89a" + b"x" * 20, "image/gif", "GIF trailer"),
        (b"RIFF\x00\x01\x00\x00WEBPVP8 " + b"x" * 20, "image/webp", "RIFF size"),
    ],
)
def test_magic_bytes_followed_by_garbage_are_400(data: bytes, mime: str, why: str) -> None:
    """A PNG signature followed by garbage used to be stored as an image."""
    uri = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": uri}]}]
    with pytest.raises(BadRequest, match=why):
        prepare_messages(messages, multimodal=True)


def test_whole_images_of_each_type_pass() -> None:
    webp_body = b"WEBPVP8 " + b"\x00" * 10
    images = {
        "image/png": PNG,
        "image/jpeg": b"\xff\xd8\xff\xe0" + b"\x00" * 20 + b"\xff\xd9",
        "image/gif": b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00" + b"\x3b",
        "image/webp": b"RIFF" + len(webp_body).to_bytes(4, "little") + webp_body,
    }
    for mime, data in images.items():
        uri = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": uri}]}]
        assert len(prepare_messages(messages, multimodal=True).attachments) == 1, mime
