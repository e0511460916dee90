"""A/B tests: variants are attached models with positive weights; one active test per project."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from store.abtests import active_ab_test, create_ab_test
from store.catalog import attach_model, create_model, create_project
from store.errors import InvalidInputError


def _project_with_models(engine: Engine) -> int:
    project = create_project(engine, key="p")
    for key in ("m1", "m2", "m3"):
        create_model(engine, key=key, upstream_urls=[f"http://127.0.0.1:9000/{key}"])
    attach_model(engine, project_key="p", model_key="m1")
    attach_model(engine, project_key="p", model_key="m2")
    assert project.id is not None
    return project.id


def test_created_test_is_the_projects_active_test(engine: Engine) -> None:
    project_id = _project_with_models(engine)
    assert active_ab_test(engine, project_id=project_id) is None
    test = create_ab_test(
        engine, project_key="p", key="t", variants=[{"model": "m1", "weight": 3}, {"model": "m2"}]
    )
    active = active_ab_test(engine, project_id=project_id)
    assert active is not None and active.id == test.id
    assert active.variants == [{"model": "m1", "weight": 3.0}, {"model": "m2", "weight": 1.0}]


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([{"model": "m1"}], "at least two variants"),
        ([{"model": "m1"}, {"model": "m3"}], "`interlog models attach p m3`"),
        ([{"model": "m1"}, {"model": "m2", "weight": 0}], "weight must be a positive"),
        ([{"model": "m1"}, {"model": "m1"}], "different model"),
    ],
)
def test_bad_variants_are_refused(
    engine: Engine, variants: list[dict[str, object]], message: str
) -> None:
    _project_with_models(engine)
    with pytest.raises(InvalidInputError, match=message):
        create_ab_test(engine, project_key="p", key="t", variants=variants)


def test_a_second_active_test_is_refused(engine: Engine) -> None:
    _project_with_models(engine)
    variants: list[dict[str, object]] = [{"model": "m1"}, {"model": "m2"}]
    create_ab_test(engine, project_key="p", key="t1", variants=variants)
    with pytest.raises(InvalidInputError, match="already has an active A/B test"):
        create_ab_test(engine, project_key="p", key="t2", variants=variants)
