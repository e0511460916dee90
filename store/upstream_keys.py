"""Which environment variables a model's `api_key_env` may name.

The gateway sends the value of that variable upstream as a bearer token, so an admin key must
not be able to point it at any variable of the gateway's environment (INTERLOG_DATABASE_URL,
INTERLOG_ADMIN_KEY, ...) and read the value at an upstream of its choosing. Allowed: names
matching INTERLOG_UPSTREAM_KEY_ENV_PATTERN (default `INTERLOG_UPSTREAM_*`) or listed in
INTERLOG_UPSTREAM_KEY_ENV_NAMES; never the name of an Interlog setting (INTERLOG_<field> of
store.settings.Settings, in any case: settings are read case-insensitively). The rule is checked
where a name is stored (store.catalog.create_model, store.catalog_admin.update_model: REST and
CLI) and again when the gateway reads the variable for an upstream call (ingest/upstream.py), so
a name stored before the rule, or before the operator narrowed it, is never sent.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

from store.errors import InvalidInputError
from store.settings import Settings

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@lru_cache(maxsize=1)
def settings_env_names() -> frozenset[str]:
    """The environment variable of every Interlog setting, upper-case."""
    prefix = str(Settings.model_config.get("env_prefix") or "")
    return frozenset(f"{prefix}{name}".upper() for name in Settings.model_fields)


def api_key_env_problem(name: str, settings: Settings) -> str | None:
    """Why NAME may not be a model's `api_key_env` under SETTINGS; None when it may."""
    if not _ENV_NAME.fullmatch(name):
        return f"api_key_env {name!r} is not an environment variable name"
    if name.upper() in settings_env_names():
        return (
            f"api_key_env {name!r} is an Interlog setting; the gateway never sends a setting "
            "upstream. Put the upstream's key in a variable matching "
            "INTERLOG_UPSTREAM_KEY_ENV_PATTERN or listed in INTERLOG_UPSTREAM_KEY_ENV_NAMES."
        )
    patterns = _split(settings.upstream_key_env_pattern)
    names = _split(settings.upstream_key_env_names)
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns) or name in names:
        return None
    rules = []
    if patterns:
        rules.append(f"match {' or '.join(patterns)} (INTERLOG_UPSTREAM_KEY_ENV_PATTERN)")
    if names:
        rules.append(f"be one of {', '.join(names)} (INTERLOG_UPSTREAM_KEY_ENV_NAMES)")
    allowed = " or ".join(rules) or "be listed in INTERLOG_UPSTREAM_KEY_ENV_NAMES (now empty)"
    return (
        f"api_key_env {name!r} is not allowed: the name must {allowed}; the operator sets "
        "which variables may hold upstream keys"
    )


def check_api_key_env(name: str | None, settings: Settings) -> None:
    """Raise InvalidInputError (REST 400, CLI error) when NAME may not be an `api_key_env`."""
    if name is None:
        return
    problem = api_key_env_problem(name, settings)
    if problem is not None:
        raise InvalidInputError(problem)
