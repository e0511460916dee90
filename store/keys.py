"""API keys: created once and shown once, stored only as SHA-256 hashes, checked in constant time.

A key looks like `il_<prefix>_<secret>`; the prefix (stored in clear) finds candidate rows, the
hash of the whole key is compared with `hmac.compare_digest`. Keys carry 256 random bits, so a
fast hash is enough (no password-stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from store.db import session_scope
from store.models import ApiKey, Project
from store.types import utcnow

KEY_PREFIX = "il"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: an admin, or one project."""

    is_admin: bool
    project_id: int | None = None
    project_key: str | None = None
    key_id: int | None = None

    def can_access(self, project_id: int) -> bool:
        return self.is_admin or self.project_id == project_id


@dataclass(frozen=True)
class CreatedKey:
    """A new key: `secret` is the only time the full key is ever available."""

    id: int
    prefix: str
    secret: str
    project_key: str | None
    is_admin: bool


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _prefix_of(secret: str) -> str | None:
    parts = secret.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return f"{parts[0]}_{parts[1]}"


def create_api_key(
    engine: Engine, *, project_key: str | None = None, admin: bool = False, name: str | None = None
) -> CreatedKey:
    """Create a key for one project, or an admin key; the secret is returned once."""
    if admin == (project_key is not None):
        raise ValueError("a key is either admin or scoped to exactly one project")
    prefix = f"{KEY_PREFIX}_{secrets.token_hex(4)}"
    secret = f"{prefix}_{secrets.token_urlsafe(32).replace('_', 'x')}"
    with session_scope(engine) as session:
        project_id = None
        if project_key is not None:
            project = session.exec(select(Project).where(Project.key == project_key)).first()
            if project is None:
                raise LookupError(f"project {project_key!r} does not exist")
            project_id = project.id
        row = ApiKey(
            prefix=prefix,
            secret_hash=hash_key(secret),
            name=name,
            project_id=project_id,
            is_admin=admin,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return CreatedKey(
            id=row.id, prefix=prefix, secret=secret, project_key=project_key, is_admin=admin
        )


def authenticate_key(
    engine: Engine, secret: str, *, admin_key: str | None = None
) -> Principal | None:
    """The principal a presented key acts for, or None if it is unknown or revoked."""
    if admin_key and hmac.compare_digest(secret.encode(), admin_key.encode()):
        return Principal(is_admin=True)
    prefix = _prefix_of(secret)
    if prefix is None:
        return None
    digest = hash_key(secret)
    with Session(engine) as session:
        rows = session.execute(
            sa_select(
                col(ApiKey.id),
                col(ApiKey.secret_hash),
                col(ApiKey.is_admin),
                col(ApiKey.project_id),
                col(Project.key),
            )
            .outerjoin(Project, col(Project.id) == col(ApiKey.project_id))
            .where(col(ApiKey.prefix) == prefix, col(ApiKey.revoked_at).is_(None))
        ).all()
    for key_id, stored_hash, is_admin, project_id, project_key in rows:
        if hmac.compare_digest(stored_hash, digest):
            return Principal(
                is_admin=bool(is_admin),
                project_id=project_id,
                project_key=project_key,
                key_id=key_id,
            )
    return None


def touch_key(engine: Engine, *, key_id: int) -> None:
    """Record that a key was just used."""
    with session_scope(engine) as session:
        session.execute(
            update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=utcnow())
        )
