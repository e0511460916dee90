"""The management REST API: projects, models, keys and A/B tests, as an operator uses them."""

from __future__ import annotations

import time

from store.catalog_admin import describe_project
from tests.ingest.admin_harness import AdminApp, admin_app
from tests.interaction_seeds import log_interaction

__all__ = ["admin_app"]

UPSTREAM = "http://127.0.0.1:9/v1"


def _model(api: AdminApp, key: str, **extra: object) -> dict:
    response = api.http.post(
        "/api/v1/admin/models",
        json={"key": key, "upstream_urls": [UPSTREAM], **extra},
        headers=api.admin,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_projects_are_created_listed_updated_and_deleted_when_empty(admin_app: AdminApp) -> None:
    api, admin = admin_app, admin_app.admin
    created = api.http.post(
        "/api/v1/admin/projects", json={"key": "shop", "name": "Shop"}, headers=admin
    )
    assert created.status_code == 201
    assert created.json()["key"] == "shop" and created.json()["default_model"] is None
    again = api.http.post("/api/v1/admin/projects", json={"key": "shop"}, headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_exists"
    _model(api, "shop-m1")
    updated = api.http.patch(
        "/api/v1/admin/projects/shop", json={"default_model": "shop-m1"}, headers=admin
    )
    assert updated.status_code == 200
    assert (updated.json()["default_model"], updated.json()["models"]) == ("shop-m1", ["shop-m1"])
    assert api.http.get("/api/v1/admin/projects/shop", headers=admin).json()["name"] == "Shop"
    listed = api.http.get("/api/v1/admin/projects", headers=admin).json()["data"]
    assert "shop" in [p["key"] for p in listed]
    cleared = api.http.patch(
        "/api/v1/admin/projects/shop", json={"default_model": None}, headers=admin
    )
    assert cleared.json()["default_model"] is None and cleared.json()["name"] == "Shop"
    project = describe_project(api.engine, key="shop")
    from store.catalog import get_project

    log_interaction(api.engine, get_project(api.engine, key="shop"))
    refused = api.http.delete("/api/v1/admin/projects/shop", headers=admin)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "project_not_empty"
    assert "1 interactions" in refused.json()["error"]["message"]
    assert describe_project(api.engine, key="shop").id == project.id
    api.http.post("/api/v1/admin/projects", json={"key": "temp"}, headers=admin)
    deleted = api.http.delete("/api/v1/admin/projects/temp", headers=admin)
    assert deleted.status_code == 200 and deleted.json() == {"key": "temp", "deleted": True}
    assert api.http.get("/api/v1/admin/projects/temp", headers=admin).status_code == 404


def test_models_are_registered_updated_attached_and_detached(admin_app: AdminApp) -> None:
    api, admin = admin_app, admin_app.admin
    model = _model(
        api, "vision", upstream_model="llava", api_key_env="INTERLOG_UPSTREAM_VISION_KEY",
        multimodal=True, connect_timeout=2, timeout=30,
    )  # fmt: skip
    assert (model["upstream_model"], model["api_key_env"], model["multimodal"]) == (
        "llava",
        "INTERLOG_UPSTREAM_VISION_KEY",
        True,
    )
    bad = api.http.post(
        "/api/v1/admin/models", json={"key": "x", "upstream_urls": ["ftp://a"]}, headers=admin
    )
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "upstream_urls.0"
    patched = api.http.patch(
        "/api/v1/admin/models/vision",
        json={"upstream_urls": [UPSTREAM, "http://127.0.0.1:10/v1"], "timeout": None},
        headers=admin,
    ).json()
    assert patched["upstream_urls"] == [UPSTREAM, "http://127.0.0.1:10/v1"]
    assert (patched["timeout"], patched["connect_timeout"], patched["api_key_env"]) == (
        None,
        2.0,
        "INTERLOG_UPSTREAM_VISION_KEY",
    )
    assert api.http.get("/api/v1/admin/models/vision", headers=admin).json()["key"] == "vision"
    assert "vision" in [
        m["key"] for m in api.http.get("/api/v1/admin/models", headers=admin).json()["data"]
    ]
    api.http.post("/api/v1/admin/projects", json={"key": "gallery"}, headers=admin)
    attached = api.http.put(
        "/api/v1/admin/projects/gallery/models/vision?default=true", headers=admin
    )
    assert attached.json()["default_model"] == "vision"
    detached = api.http.delete("/api/v1/admin/projects/gallery/models/vision", headers=admin)
    assert detached.json()["models"] == [] and detached.json()["default_model"] is None
    missing = api.http.delete("/api/v1/admin/projects/gallery/models/vision", headers=admin)
    assert missing.status_code == 404


def test_keys_show_their_secret_once_and_stop_working_when_revoked(admin_app: AdminApp) -> None:
    api, admin = admin_app, admin_app.admin
    api.http.post("/api/v1/admin/projects", json={"key": "keyed"}, headers=admin)
    created = api.http.post(
        "/api/v1/admin/keys", json={"project": "keyed", "name": "ci"}, headers=admin
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith(body["prefix"] + "_") and body["scope"] == "project"
    listed = api.http.get("/api/v1/admin/keys", params={"project": "keyed"}, headers=admin).json()
    [entry] = listed["data"]
    assert "secret" not in entry and entry["name"] == "ci" and entry["last_used_at"] is None
    as_key = api.as_key(body["secret"])
    assert api.http.get("/api/v1/metrics", headers=as_key).status_code == 200
    deadline = time.monotonic() + 20  # last use is written by the housekeeping round (5 s)
    while True:
        used = api.http.get("/api/v1/admin/keys", params={"project": "keyed"}, headers=admin)
        if used.json()["data"][0]["last_used_at"] is not None:
            break
        assert time.monotonic() < deadline, "the key's last use was never recorded"
        time.sleep(0.5)
    revoked = api.http.delete(f"/api/v1/admin/keys/{body['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert api.http.get("/api/v1/metrics", headers=as_key).status_code == 401
    both = api.http.post(
        "/api/v1/admin/keys", json={"project": "keyed", "admin": True}, headers=admin
    )
    assert both.status_code == 400 and both.json()["error"]["param"] == "project"
    unknown = api.http.post("/api/v1/admin/keys", json={"project": "nope"}, headers=admin)
    assert unknown.status_code == 404
    admin_key = api.http.post("/api/v1/admin/keys", json={"admin": True}, headers=admin).json()
    assert admin_key["scope"] == "admin" and admin_key["project"] is None
    assert api.http.get("/api/v1/admin/keys/99999", headers=admin).status_code in (404, 405)
    assert api.http.delete("/api/v1/admin/keys/99999", headers=admin).status_code == 404


def test_ab_tests_are_created_listed_reported_and_cancelled(admin_app: AdminApp) -> None:
    api, admin = admin_app, admin_app.admin
    api.http.post("/api/v1/admin/projects", json={"key": "abp"}, headers=admin)
    for key in ("abp-a", "abp-b"):
        _model(api, key)
        api.http.put(f"/api/v1/admin/projects/abp/models/{key}", headers=admin)
    from store.metrics import create_metric

    create_metric(api.engine, project_key="abp", key="quality", kind="scalar")
    created = api.http.post(
        "/api/v1/admin/abtests",
        json={
            "project": "abp", "key": "first", "metric": "quality", "auto_deploy": True,
            "variants": [{"model": "abp-a", "weight": 3}, {"model": "abp-b"}],
        },
        headers=admin,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["variants"] == [
        {"model": "abp-a", "weight": 3.0},
        {"model": "abp-b", "weight": 1.0},
    ]
    assert created.json()["status"] == "active"
    second = api.http.post(
        "/api/v1/admin/abtests",
        json={
            "project": "abp",
            "key": "second",
            "variants": [{"model": "abp-a"}, {"model": "abp-b"}],
        },
        headers=admin,
    )
    assert (
        second.status_code == 400 and "already has an active" in second.json()["error"]["message"]
    )
    detail = api.http.get("/api/v1/admin/abtests/abp/first", headers=admin).json()
    assert detail["enough_scores"] is False and detail["scores"] == {"abp-a": 0, "abp-b": 0}
    assert detail["report"]["control"] == "abp-a"
    active = api.http.get("/api/v1/admin/abtests", params={"status": "active"}, headers=admin)
    assert "first" in [t["key"] for t in active.json()["data"]]
    cancelled = api.http.post("/api/v1/admin/abtests/abp/first/cancel", headers=admin)
    assert cancelled.json()["status"] == "cancelled"
    twice = api.http.post("/api/v1/admin/abtests/abp/first/cancel", headers=admin)
    assert twice.status_code == 400
    assert api.http.get("/api/v1/admin/abtests/abp/none", headers=admin).status_code == 404
