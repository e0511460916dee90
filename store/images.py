"""Images of logged conversations: find the `attachment://sha256/<hex>` references, load bytes.

The gateway stores each image once per content hash (table `attachment`) and rewrites the message
part to reference it; people reading a conversation need the bytes back to render them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from store.models import Attachment

ATTACHMENT_PREFIX = "attachment://sha256/"


@dataclass(frozen=True)
class Image:
    """A stored image: its content hash, MIME type and bytes."""

    sha256: str
    mime_type: str
    data: bytes


def image_url_of(part: Any) -> str | None:
    """The URL of an image part in either form (flat string or `{"url": ...}`), else None."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    value = part.get("image_url")
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        return str(value["url"])
    return None


def attachment_hash(url: str) -> str | None:
    """The content hash an `attachment://sha256/<hex>` URL names, else None."""
    return url[len(ATTACHMENT_PREFIX) :] if url.startswith(ATTACHMENT_PREFIX) else None


def attachment_refs(messages: Iterable[dict[str, Any]]) -> list[str]:
    """The content hashes of the images a logged message list refers to, in order."""
    found: list[str] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            url = image_url_of(part)
            digest = attachment_hash(url) if url else None
            if digest:
                found.append(digest)
    return found


def load_images(engine: Engine, *, sha256s: Iterable[str]) -> dict[str, Image]:
    """Stored images by content hash; unknown hashes are simply absent."""
    wanted = sorted(set(sha256s))
    if not wanted:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(
            select(col(Attachment.sha256), col(Attachment.mime_type), col(Attachment.data)).where(
                col(Attachment.sha256).in_(wanted)
            )
        ).all()
    return {sha: Image(sha256=sha, mime_type=mime, data=bytes(data)) for sha, mime, data in rows}
