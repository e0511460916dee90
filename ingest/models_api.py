"""GET /api/v1/models and /api/v1/models/{id}: what the key may send as a chat request's `model`,
in OpenAI's list shape (`openai`'s `models.list()` / `models.retrieve()`, clients that check the
model list as they start, e.g. llama-index's OpenAILike).

One entry per project (the id `project`: its active A/B test or its default model answers) and
per model attached to it (`project/model`); a project key sees its own project, an admin key
every project. Interlog's extras beside OpenAI's `id`, `object`, `created`, `owned_by`:
`project`; for a model `default` (the project's default model) and `multimodal`; for a project
`default_model`, `multimodal` (its default model's) and `ab_test` (the active A/B test).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from ingest.auth import PrincipalDep
from ingest.errors import NotFound
from store.keys import Principal
from store.routable_models import RoutableModel, routable_models

router = APIRouter(prefix="/api/v1", tags=["models"])

ModelId = Annotated[str, Path(min_length=1, max_length=257)]


def model_json(model: RoutableModel) -> dict[str, Any]:
    """One entry of the list, OpenAI's Model object with Interlog's extras."""
    body: dict[str, Any] = {
        "id": model.id,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.project_key,
        "project": model.project_key,
        "multimodal": model.multimodal,
    }
    if model.model_key is None:
        body["default_model"] = model.default_model
        body["ab_test"] = model.ab_test
    else:
        body["default"] = model.default
    return body


async def _visible(request: Request, principal: Principal) -> list[RoutableModel]:
    project_id = None if principal.is_admin else principal.project_id
    if not principal.is_admin and project_id is None:  # a project key always has its project
        return []
    return await asyncio.to_thread(routable_models, request.app.state.engine, project_id=project_id)


@router.get("/models")
async def list_models(request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """Every `model` value this key may send to /api/v1/chat/completions."""
    models = await _visible(request, principal)
    return {"object": "list", "data": [model_json(model) for model in models]}


@router.get("/models/{model_id:path}")
async def get_model(request: Request, principal: PrincipalDep, model_id: ModelId) -> dict[str, Any]:
    """One entry of the list; 404 for an id the key may not send (or that does not exist)."""
    for model in await _visible(request, principal):
        if model.id == model_id:
            return model_json(model)
    raise NotFound(
        f"model {model_id!r} not found: GET /api/v1/models lists the models this key may use",
        param="model",
    )
