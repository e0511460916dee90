"""Listing and revoking API keys: what an operator sees of a key (never its secret or hash)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from store.db import session_scope
from store.errors import NotFoundError
from store.models import ApiKey, Project
from store.types import utcnow


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: prefix, scope, name and dates; the secret is never available again."""

    id: int
    prefix: str
    scope: str  # "admin" or "project"
    project: str | None
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _info(row: ApiKey, project_key: str | None) -> KeyInfo:
    assert row.id is not None
    return KeyInfo(
        id=row.id,
        prefix=row.prefix,
        scope="admin" if row.is_admin else "project",
        project=project_key,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def list_api_keys(
    engine: Engine, *, project_key: str | None = None, include_revoked: bool = True
) -> list[KeyInfo]:
    """Keys, oldest first: every key, or one project's keys."""
    statement = (
        sa_select(ApiKey, col(Project.key))
        .outerjoin(Project, col(Project.id) == col(ApiKey.project_id))
        .order_by(col(ApiKey.id))
    )
    with Session(engine) as session:
        if project_key is not None:
            project = session.execute(
                sa_select(col(Project.id)).where(col(Project.key) == project_key)
            ).first()
            if project is None:
                raise NotFoundError("project", project_key)
            statement = statement.where(col(ApiKey.project_id) == project[0])
        if not include_revoked:
            statement = statement.where(col(ApiKey.revoked_at).is_(None))
        rows = session.execute(statement).all()
    return [_info(key, project) for key, project in rows]


def get_api_key(engine: Engine, *, key_id: int) -> KeyInfo:
    """One key by id."""
    statement = (
        sa_select(ApiKey, col(Project.key))
        .outerjoin(Project, col(Project.id) == col(ApiKey.project_id))
        .where(col(ApiKey.id) == key_id)
    )
    with Session(engine) as session:
        row = session.execute(statement).first()
    if row is None:
        raise NotFoundError("API key", key_id)
    return _info(row[0], row[1])


def find_key_id(engine: Engine, *, id_or_prefix: str) -> int:
    """A key's id from its id or its prefix (`il_xxxxxxxx`, as printed when it was created)."""
    if id_or_prefix.isdigit():
        return int(id_or_prefix)
    with Session(engine) as session:
        ids = session.execute(
            sa_select(col(ApiKey.id)).where(col(ApiKey.prefix) == id_or_prefix)
        ).all()
    if len(ids) != 1:
        raise NotFoundError("API key", id_or_prefix)
    return int(ids[0][0])


def revoke_api_key(engine: Engine, *, key_id: int) -> KeyInfo:
    """Revoke a key (idempotent: revoking twice keeps the first revocation time)."""
    with session_scope(engine) as session:
        session.execute(
            update(ApiKey)
            .where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None))
            .values(revoked_at=utcnow())
        )
    return get_api_key(engine, key_id=key_id)
