"""External logging: POST /api/v1/interactions (Adaptive SDK and raw) and the bulk form."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from adaptive_sdk import Adaptive
from sqlalchemy import Engine, func, select

from ingest.app import create_app
from ingest.demo_data import tiny_png
from store.catalog import create_model, create_project
from store.interactions import ATTACHMENT_TABLE, INTERACTION_TABLE, LABEL_TABLE
from store.keys import create_api_key
from store.metrics import create_metric
from store.models import MetricValue
from store.settings import Settings
from tests.ingest.chat_double import serve_in_thread

PNG = base64.b64encode(tiny_png((10, 20, 30))).decode()


class Server(NamedTuple):
    url: str
    key: str
    other_key: str
    admin_key: str
    app: Any


@pytest.fixture
def server(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[Server]:
    create_project(engine, key="proj")
    create_project(engine, key="other")
    create_model(engine, key="m1", upstream_urls=["http://127.0.0.1:9"])
    create_metric(engine, project_key="proj", key="quality")
    create_metric(engine, project_key="proj", key="thumbs", kind="bool")
    key = create_api_key(engine, project_key="proj").secret
    other = create_api_key(engine, project_key="other").secret
    settings = Settings(
        database_url=database_url, journal_dir=tmp_path / "journal", admin_key="admin-secret"
    )
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield Server(url, key, other, "admin-secret", app)


def _post(server: Server, path: str, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or server.key}"}
    return httpx.post(server.url + path, json=body, headers=headers, timeout=30)


def _item(**extra: Any) -> dict[str, Any]:
    return {
        "model_service": "m1",
        "project": "proj",
        "messages": [{"role": "user", "content": "q"}],
        "completion": "a",
        **extra,
    }


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_adaptive_sdk_logs_an_interaction_with_feedback(server: Server, engine: Engine) -> None:
    client = Adaptive(base_url=server.url, api_key=server.key)
    session = uuid.uuid4()
    answer = client.interactions.create(
        messages=[{"role": "user", "content": "what is 2+2?"}],
        completion="4",
        model="m1",
        project="proj",
        feedbacks=[{"feedback_key": "quality", "value": 0.9, "details": "right"}],
        session_id=session,
        labels={"source": "batch"},
        created_at="2024-02-21T09:51:03Z",
    )
    assert answer.session_id == session and len(answer.feedback_ids) == 1
    with engine.connect() as connection:
        row = connection.execute(
            select(INTERACTION_TABLE).where(
                INTERACTION_TABLE.c.completion_id == answer.completion_id
            )
        ).one()
        value = connection.execute(select(MetricValue.value)).scalar_one()  # type: ignore[call-overload]
    assert row.completion == "4" and row.source == "OFFLINE"
    assert row.labels == {"source": "batch"}
    assert row.created_at.isoformat() == "2024-02-21T09:51:03+00:00"
    assert value == 0.9
    # The completion id carries the interaction's own time (UUIDv7).
    assert answer.completion_id.int >> 80 == int(row.created_at.timestamp() * 1000)


def test_unknown_model_service_is_404_and_nothing_is_stored(server: Server, engine: Engine) -> None:
    response = _post(server, "/api/v1/interactions", _item(model_service="nope"))
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "model_service"
    assert _count(engine, INTERACTION_TABLE) == 0


def test_another_projects_key_gets_404(server: Server, engine: Engine) -> None:
    response = _post(server, "/api/v1/interactions", _item(), key=server.other_key)
    assert response.status_code == 404
    assert _count(engine, INTERACTION_TABLE) == 0


def test_missing_completion_is_422_in_the_error_shape(server: Server) -> None:
    item = _item()
    del item["completion"]
    response = _post(server, "/api/v1/interactions", item)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "completion" and error["type"] == "invalid_request_error"


def test_feedback_for_unknown_metric_is_404_and_keeps_nothing(
    server: Server, engine: Engine
) -> None:
    body = _item(feedbacks=[{"metric": "nope", "value": 1}])
    response = _post(server, "/api/v1/interactions", body)
    assert response.status_code == 404
    assert "metric nope" in response.json()["error"]["message"]
    assert _count(engine, INTERACTION_TABLE) == 0


@pytest.mark.parametrize("value", [1e13, -1e13, 1e308])
def test_feedback_value_out_of_range_is_422_and_keeps_nothing(
    server: Server, engine: Engine, value: float
) -> None:
    body = _item(feedbacks=[{"metric": "quality", "value": value}])
    response = _post(server, "/api/v1/interactions", body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == ("value_out_of_range", "value")
    assert "metric quality" in error["message"] and "out of range" in error["message"]
    assert _count(engine, INTERACTION_TABLE) == 0


def test_bulk_item_with_a_feedback_out_of_range_fails_alone(server: Server, engine: Engine) -> None:
    items = [
        _item(completion="in range", feedbacks=[{"metric": "quality", "value": -1e12}]),
        _item(completion="huge", feedbacks=[{"metric": "quality", "value": 1e308}]),
        _item(completion="too low", feedbacks=[{"metric": "quality", "value": -1e13}]),
        _item(completion="top", feedbacks=[{"metric": "quality", "value": 1e12}]),
    ]
    response = _post(server, "/api/v1/interactions/bulk", {"interactions": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    codes = [r["error"]["code"] if r["error"] else None for r in body["results"]]
    assert codes == [None, "value_out_of_range", "value_out_of_range", None]
    with engine.connect() as connection:
        stored = connection.execute(select(INTERACTION_TABLE.c.completion)).scalars().all()
        values = connection.execute(select(MetricValue.value)).scalars().all()  # type: ignore[call-overload]
    assert sorted(stored) == ["in range", "top"]
    assert sorted(values) == [-1e12, 1e12]


def test_bulk_keeps_good_items_and_reports_each_bad_one(server: Server, engine: Engine) -> None:
    items = [
        _item(completion="first", labels={"k": "v"}),
        _item(model_service="nope"),
        {"model_service": "m1", "messages": []},
        _item(feedbacks=[{"metric": "thumbs", "value": 0.5}]),
        _item(completion="last", feedbacks=[{"metric": "thumbs", "value": True}]),
        "not an object",
    ]
    response = _post(server, "/api/v1/interactions/bulk", {"interactions": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 4)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["error"] is None for r in results] == [True, False, False, False, True, False]
    assert results[1]["error"]["code"] == "not_found"
    assert results[2]["error"]["param"] in ("messages", "completion")
    assert "bool metric" in results[3]["error"]["message"]
    assert len(results[4]["feedback_ids"]) == 1
    with engine.connect() as connection:
        stored = connection.execute(select(INTERACTION_TABLE.c.completion)).scalars().all()
    assert sorted(stored) == ["first", "last"]
    assert _count(engine, LABEL_TABLE) == 1


def test_bulk_rows_go_through_the_writer_process_on_sqlite_and_read_back(
    server: Server, engine: Engine
) -> None:
    items = [_item(completion=f"c{n}", labels={"n": str(n)}, user=f"u{n}") for n in range(30)]
    response = _post(server, "/api/v1/interactions/bulk", {"interactions": items})
    assert response.status_code == 200 and response.json()["accepted"] == 30
    writer = server.app.state.sqlite_writer
    status = httpx.get(
        server.url + "/api/v1/status", headers={"Authorization": f"Bearer {server.key}"}
    ).json()
    if engine.dialect.name == "sqlite":
        assert writer is not None and writer.batches == 1 and writer.pid is not None
        assert status["sqlite_writer_process"] == {
            "pid": writer.pid,
            "transactions": 1,
            "batches": 1,
        }
    else:
        assert writer is None  # PostgreSQL: the request's thread writes (COPY)
        assert "sqlite_writer_process" not in status
    with engine.connect() as connection:
        rows = connection.execute(
            select(INTERACTION_TABLE.c.completion, INTERACTION_TABLE.c.user_id)
        ).all()
        labels = connection.execute(select(LABEL_TABLE.c.value)).scalars().all()
    assert sorted(rows) == sorted((f"c{n}", f"u{n}") for n in range(30))
    assert sorted(labels, key=int) == [str(n) for n in range(30)]


def test_bulk_item_over_the_label_limits_is_refused_alone(server: Server, engine: Engine) -> None:
    items = [
        _item(completion="kept", labels={"ok": "1"}),
        _item(completion="too long", labels={"k" * 129: "v"}),
        _item(completion="too many", labels={f"k{n}": "v" for n in range(65)}),
    ]
    response = _post(server, "/api/v1/interactions/bulk", {"interactions": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["error"] is None
    assert [r["error"]["code"] for r in results[1:]] == ["label_too_long", "too_many_labels"]
    with engine.connect() as connection:
        stored = connection.execute(select(INTERACTION_TABLE.c.completion)).scalars().all()
    assert stored == ["kept"]


def test_bulk_reimport_with_completion_ids_creates_no_duplicates(
    server: Server, engine: Engine
) -> None:
    items = [
        _item(completion_id=str(uuid.uuid4()), feedbacks=[{"metric": "quality", "value": 2}])
        for _ in range(5)
    ]
    first = _post(server, "/api/v1/interactions/bulk", {"interactions": items}).json()
    again = _post(server, "/api/v1/interactions/bulk", {"interactions": items}).json()
    assert first["accepted"] == again["accepted"] == 5
    assert [r["feedback_ids"] for r in first["results"]] == [
        r["feedback_ids"] for r in again["results"]
    ]
    assert _count(engine, INTERACTION_TABLE) == 5
    assert _count(engine, MetricValue.__table__) == 5  # type: ignore[attr-defined]


def test_admin_key_must_name_the_project(server: Server, engine: Engine) -> None:
    item = _item()
    del item["project"]
    response = _post(server, "/api/v1/interactions", item, key=server.admin_key)
    assert response.status_code == 400 and response.json()["error"]["param"] == "project"
    item["project"] = "other"
    response = _post(server, "/api/v1/interactions", item, key=server.admin_key)
    assert response.status_code == 200


def test_logged_images_are_stored_once_per_hash(server: Server, engine: Engine) -> None:
    image = {"type": "image_url", "image_url": f"data:image/png;base64,{PNG}"}
    message = {"role": "user", "content": [{"type": "text", "text": "look"}, image]}
    items = [_item(messages=[message]) for _ in range(3)]
    body = _post(server, "/api/v1/interactions/bulk", {"interactions": items}).json()
    assert body["accepted"] == 3
    assert _count(engine, ATTACHMENT_TABLE) == 1
    with engine.connect() as connection:
        messages = connection.execute(select(INTERACTION_TABLE.c.messages)).scalars().first()
    assert "base64" not in str(messages) and "attachment://sha256/" in str(messages)


def test_bulk_needs_an_interactions_list_and_a_key(server: Server) -> None:
    response = _post(server, "/api/v1/interactions/bulk", [_item()])
    assert response.status_code == 400
    response = httpx.post(server.url + "/api/v1/interactions/bulk", json={"interactions": []})
    assert response.status_code == 401


def test_bulk_accepts_every_spelling_pydantic_does_and_bounds_token_counts(
    server: Server, engine: Engine
) -> None:
    session = uuid.uuid4()
    items = [
        _item(session_id=str(session).upper(), created_at="2024-02-21T09:51:03+05:30"),
        _item(prompt_tokens=2**31),  # beyond the INTEGER column: this item only is refused
        _item(session_id=str(session), latency_ms=12, completion_tokens=7),
    ]
    body = _post(server, "/api/v1/interactions/bulk", {"interactions": items}).json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    first, refused, last = body["results"]
    assert first["session_id"] == last["session_id"] == str(session)
    assert refused["error"]["param"] == "prompt_tokens" and "completion_id" not in refused
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                INTERACTION_TABLE.c.completion_id,
                INTERACTION_TABLE.c.created_at,
                INTERACTION_TABLE.c.latency_ms,
            ).order_by(INTERACTION_TABLE.c.created_at)
        ).all()
    assert [str(row.completion_id) for row in rows] == [
        first["completion_id"],
        last["completion_id"],
    ]
    assert rows[0].created_at.isoformat() == "2024-02-21T04:21:03+00:00"
    assert rows[1].latency_ms == 12.0


def test_bulk_feedbacks_are_checked_per_item_and_stored_all_or_nothing(
    server: Server, engine: Engine
) -> None:
    other_project = str(uuid.uuid4())
    seeded = _post(
        server,
        "/api/v1/interactions",
        {**_item(project="other", completion_id=other_project)},
        key=server.other_key,
    )
    assert seeded.status_code == 200
    fb = {"metric": "quality", "value": 1, "id": "client-1"}
    first = str(uuid.uuid4())
    items = [
        _item(completion="a", completion_id=first, feedbacks=[fb]),
        _item(completion="b", feedbacks=[{**fb, "value": 2}]),  # same id, other value
        _item(completion="c", feedbacks=[{**fb, "id": "client-2"}, {**fb, "value": 3}]),
        _item(completion="d", completion_id=other_project, feedbacks=[{**fb, "id": "x"}]),
        _item(completion="a", completion_id=first, feedbacks=[fb]),  # item a again: idempotent
    ]
    results = _post(server, "/api/v1/interactions/bulk", {"interactions": items}).json()["results"]
    assert [r["error"] is None for r in results] == [True, False, False, False, True]
    assert "different value" in results[1]["error"]["message"]
    assert "different value" in results[2]["error"]["message"]
    # Another project's id: refused as taken (it was a 404, telling whose it is), not dropped.
    assert results[3]["error"]["code"] == "already_exists"
    assert results[4]["feedback_ids"] == results[0]["feedback_ids"]
    with engine.connect() as connection:
        values = connection.execute(select(MetricValue.value)).scalars().all()  # type: ignore[call-overload]
        completions = connection.execute(select(INTERACTION_TABLE.c.completion)).scalars().all()
    assert values == [1.0]  # item c stored none of its two values
    # Values that could not be attached leave their interactions stored (as before).
    assert sorted(completions) == ["a", "a", "b", "c"]  # one "a" is the other project's


def test_a_completion_id_of_another_project_is_409_never_silently_dropped(
    server: Server, engine: Engine
) -> None:
    """It used to answer 200 "stored" and store nothing (with feedbacks: 404, where an unused id
    answers 200). Now the id is refused, whether or not feedbacks come with it; a retry within
    the owning project stays idempotent."""
    taken = str(uuid.uuid4())
    owner = _post(server, "/api/v1/interactions", _item(completion_id=taken))
    assert owner.status_code == 200
    other_item = {**_item(completion_id=taken, completion="other's"), "project": "other"}
    for item in (other_item, {**other_item, "feedbacks": [{"metric": "quality", "value": 1}]}):
        response = _post(server, "/api/v1/interactions", item, key=server.other_key)
        assert response.status_code == 409, response.text
        assert taken in response.json()["error"]["message"]
    again = _post(server, "/api/v1/interactions", _item(completion_id=taken))
    assert again.status_code == 200  # the same project retrying: idempotent
    fresh = {**other_item, "completion_id": str(uuid.uuid4())}
    assert _post(server, "/api/v1/interactions", fresh, key=server.other_key).status_code == 200
    with engine.connect() as connection:
        stored = connection.execute(select(INTERACTION_TABLE.c.completion)).scalars().all()
    assert sorted(stored) == ["a", "other's"]


@pytest.mark.parametrize("feedbacks", [False, True], ids=["rows-only", "with-feedbacks"])
def test_bulk_items_sharing_a_completion_id_are_reported(
    server: Server, engine: Engine, feedbacks: bool
) -> None:
    """Two items with one id reported `accepted: 2` and stored one; an id of another project
    was ignored. Each now gets its own 409 and the rest is stored (on SQLite without feedbacks
    the rows go through the writer process: the same checks)."""
    taken = str(uuid.uuid4())
    assert _post(server, "/api/v1/interactions", _item(completion_id=taken)).status_code == 200
    shared = str(uuid.uuid4())
    extra = {"feedbacks": [{"metric": "quality", "value": 1}]} if feedbacks else {}
    items = [
        _item(completion_id=shared, completion="first", **extra),
        _item(completion_id=shared, completion="second", **extra),
        _item(completion_id=taken, completion="taken", **extra),
        _item(completion="fresh", **extra),
    ]
    items = [{**item, "project": "other"} for item in items]
    if feedbacks:
        create_metric(engine, project_key="other", key="quality")
    response = _post(
        server, "/api/v1/interactions/bulk", {"interactions": items}, key=server.other_key
    )
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 2), answer
    errors = [r["error"] for r in answer["results"]]
    assert errors[0] is None and errors[3] is None
    assert errors[1]["code"] == errors[2]["code"] == "already_exists", errors
    assert "twice in this request" in errors[1]["message"]
    with engine.connect() as connection:
        stored = connection.execute(select(INTERACTION_TABLE.c.completion)).scalars().all()
    assert sorted(stored) == ["a", "first", "fresh"]
