"""Routing decisions: explicit model, A/B variant by weight and session, default, and 404s."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from ingest.errors import NotFound
from ingest.routing import AbRoutes, ProjectRoutes, UpstreamModel, pick_variant, route_request
from ingest.upstream import replica_order


def _model(key: str, *urls: str) -> UpstreamModel:
    return UpstreamModel(
        id=hash(key) % 1000,
        key=key,
        urls=urls or (f"http://{key}/v1",),
        upstream_name=key,
        api_key_env=None,
        multimodal=False,
        connect_timeout=None,
        timeout=None,
    )


MODELS = {"m1": _model("m1"), "m2": _model("m2")}
AB = AbRoutes(id=7, key="t", variants=(("m1", 1.0), ("m2", 4.0)))


def test_explicit_model_wins_over_the_ab_test() -> None:
    routes = ProjectRoutes(1, "p", MODELS, "m1", AB)
    route = route_request(routes, "p/m2", uuid.uuid4())
    assert (route.model.key, route.ab_test_id, route.public_model) == ("m2", None, "p/m2")


def test_ab_variants_follow_their_weights_and_stick_to_sessions() -> None:
    routes = ProjectRoutes(1, "p", MODELS, "m1", AB)
    sessions = [uuid.UUID(int=i * 7919 + 1, version=4) for i in range(4000)]
    counts = Counter(route_request(routes, "p", s).ab_variant for s in sessions)
    assert 0.76 <= counts["m2"] / 4000 <= 0.84
    assert all(pick_variant(AB, s) == pick_variant(AB, s) for s in sessions[:50])


def test_without_ab_test_the_default_model_answers() -> None:
    route = route_request(ProjectRoutes(1, "p", MODELS, "m2", None), "p", uuid.uuid4())
    assert (route.model.key, route.ab_variant) == ("m2", None)


@pytest.mark.parametrize(
    ("routes", "model", "message"),
    [
        (None, "ghost", "`interlog projects create ghost`"),
        (
            ProjectRoutes(1, "p", MODELS, None, None),
            "p",
            "`interlog models attach p MODEL --default`",
        ),
        (ProjectRoutes(1, "p", MODELS, "m1", None), "p/m9", "`interlog models attach p m9`"),
    ],
)
def test_what_is_missing_is_a_404_that_says_how_to_fix_it(
    routes: ProjectRoutes | None, model: str, message: str
) -> None:
    with pytest.raises(NotFound, match=message):
        route_request(routes, model, uuid.uuid4())


def test_rendezvous_order_is_stable_per_session_and_moves_few_sessions() -> None:
    three = _model("m", "http://a/v1", "http://b/v1", "http://c/v1")
    four = _model("m", "http://a/v1", "http://b/v1", "http://c/v1", "http://d/v1")
    sessions = [uuid.uuid4() for _ in range(1000)]
    first = {s: replica_order(three, s, 0)[0] for s in sessions}
    assert all(replica_order(three, s, 99)[0] == first[s] for s in sessions)
    moved = sum(replica_order(four, s, 0)[0] != first[s] for s in sessions)
    assert 150 <= moved <= 350  # about a quarter move to the new replica, the rest stay


def test_requests_without_session_rotate_over_replicas() -> None:
    model = _model("m", "http://a/v1", "http://b/v1")
    assert [replica_order(model, None, n)[0] for n in range(4)] == [
        "http://a/v1",
        "http://b/v1",
        "http://a/v1",
        "http://b/v1",
    ]
