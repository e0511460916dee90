"""Images of logged conversations: references found in messages, bytes loaded by content hash."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sqlalchemy import Engine

from store.images import attachment_refs, image_url_of, load_images
from store.interactions import write_interactions
from tests.dashboard.seeds import PIXEL_PNG
from tests.interaction_seeds import seed_project


def test_attachment_refs_finds_both_image_part_forms_in_order() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "two pictures"},
                {"type": "image_url", "image_url": {"url": "attachment://sha256/aa"}},
                {"type": "image_url", "image_url": "attachment://sha256/bb"},
                {"type": "image_url", "image_url": {"url": "https://example.org/c.png"}},
            ],
        },
    ]
    assert attachment_refs(messages) == ["aa", "bb"]
    assert image_url_of({"type": "text", "text": "x"}) is None
    assert image_url_of({"type": "image_url", "image_url": 3}) is None


def test_load_images_returns_stored_bytes_and_skips_unknown_hashes(engine: Engine) -> None:
    project = seed_project(engine, "p1")
    digest = hashlib.sha256(PIXEL_PNG).hexdigest()
    write_interactions(
        engine,
        [
            {
                "completion_id": "01900000-0000-7000-8000-000000000001",
                "project_id": project.id,
                "session_id": "01900000-0000-7000-8000-0000000000aa",
                "created_at": "2026-01-01T00:00:00+00:00",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": f"attachment://sha256/{digest}"},
                            }
                        ],
                    }
                ],
                "attachments": [
                    {
                        "sha256": digest,
                        "mime_type": "image/png",
                        "size_bytes": len(PIXEL_PNG),
                        "data_b64": base64.b64encode(PIXEL_PNG).decode(),
                    }
                ],
            }
        ],
    )
    images = load_images(engine, sha256s=[digest, "0" * 64, digest])
    assert list(images) == [digest]
    assert images[digest].data == PIXEL_PNG
    assert images[digest].mime_type == "image/png"
    assert load_images(engine, sha256s=[]) == {}
