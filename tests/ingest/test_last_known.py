"""The last-known keys and routes (ingest/last_known.py): what is used while the store is away,
for how long, and how it survives a restart through its file."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ingest.last_known import LastKnown, last_known_for
from ingest.routing import AbRoutes, ProjectRoutes, UpstreamModel
from store.keys import Principal

MODEL = UpstreamModel(
    id=3, key="m1", urls=("http://127.0.0.1:9/v1",), upstream_name="m1", api_key_env=None,
    multimodal=False, connect_timeout=None, timeout=30.0,
)  # fmt: skip
ROUTES = ProjectRoutes(
    project_id=1, project_key="proj", models={"m1": MODEL}, default_model="m1",
    ab_test=AbRoutes(id=4, key="spring", variants=(("m1", 0.5), ("m2", 0.5))),
)  # fmt: skip
PRINCIPAL = Principal(is_admin=False, project_id=1, project_key="proj", key_id=7)


def test_knowledge_is_used_within_the_grace_period_only() -> None:
    known = LastKnown(None, grace=0.2)
    known.remember_key("abc", PRINCIPAL)
    known.remember_routes("proj", ROUTES)
    assert known.key("abc") == PRINCIPAL and known.routes("proj") == ROUTES
    assert known.key("other") is None and known.routes("other") is None
    time.sleep(0.3)
    assert known.key("abc") is None and known.routes("proj") is None
    known.remember_routes("proj", ROUTES)
    known.remember_routes("proj", None)  # the project is gone: forget its routes
    assert known.routes("proj") is None


def test_the_file_round_trips_and_is_private(tmp_path: Path) -> None:
    known = last_known_for(tmp_path)
    known.remember_key("abc", PRINCIPAL)
    known.remember_routes("proj", ROUTES)
    assert known.save() and not known.save()  # nothing changed since: not written again
    assert (tmp_path / "last-known.json").stat().st_mode & 0o777 == 0o600
    loaded = last_known_for(tmp_path)
    assert loaded.key("abc") == PRINCIPAL
    assert loaded.routes("proj") == ROUTES


def test_old_or_unreadable_files_give_no_knowledge(tmp_path: Path) -> None:
    known = last_known_for(tmp_path)
    known.remember_key("abc", PRINCIPAL)
    known.save()
    path = tmp_path / "last-known.json"
    data = json.loads(path.read_text())
    data["keys"]["abc"][0] -= 7200  # verified two hours ago
    path.write_text(json.dumps(data))
    assert last_known_for(tmp_path).key("abc") is None
    path.write_text("{not json")
    assert last_known_for(tmp_path).key("abc") is None
