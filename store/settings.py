"""The one settings class: every knob of Interlog, read from INTERLOG_* environment variables.

It lives in `store` because both the gateway (`ingest`) and the dashboard need it and imports
flow `ingest -> store <- dashboard`. Nothing else reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Interlog configuration; each field is documented in the README (a test checks it)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOG_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///interlog.db",
        description="SQLAlchemy URL of the store: a SQLite file (default `interlog.db` in the "
        "working directory) or `postgresql+psycopg://user@host/db`.",
    )
    journal_dir: Path = Field(
        default=Path("interlog-journal"),
        description="Directory of the local write-ahead journal of interactions not yet stored.",
    )
    journal_fsync: Literal["entry", "batch", "never"] = Field(
        default="batch",
        description="When the journal is fsynced: before each response finishes (entry; "
        "concurrent responses share one fsync), once per writer cycle off the response path "
        "(batch), or never (the OS decides).",
    )
    admin_key: str | None = Field(
        default=None,
        description="Bootstrap admin API key; accepted as an admin key in addition to stored keys.",
    )
    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8000, description="Port the gateway listens on.")
    dashboard_host: str = Field(
        default="127.0.0.1", description="Address the dashboard listens on."
    )
    dashboard_port: int = Field(default=8501, description="Port the dashboard listens on.")
    dashboard_auth: bool = Field(
        default=True,
        description="Require an API key to sign in to the dashboard; may be false only when the "
        "dashboard listens on localhost.",
    )
    log_level: str = Field(
        default="info", description="Log level of the gateway (debug, info, warning, error)."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        description="Largest request body accepted, in bytes (images are limited to 10 MB each).",
    )
    upstream_connect_timeout: float = Field(
        default=5.0, description="Default seconds to connect to an upstream model server."
    )
    upstream_timeout: float = Field(
        default=120.0, description="Default seconds an upstream may take to answer completely."
    )
    upstream_key_env_pattern: str = Field(
        default="INTERLOG_UPSTREAM_*",
        description="Which environment variables a model's `api_key_env` may name (its value is "
        "sent upstream as a bearer token): shell-style patterns, comma-separated, matched "
        "case-sensitively; empty allows only INTERLOG_UPSTREAM_KEY_ENV_NAMES. An Interlog "
        "setting (INTERLOG_<setting>) is never allowed.",
    )
    upstream_key_env_names: str = Field(
        default="",
        description="More variables a model's `api_key_env` may name, comma-separated, e.g. "
        "`OPENAI_API_KEY,ANTHROPIC_API_KEY` (an Interlog setting is refused even if listed).",
    )
    routing_cache_seconds: float = Field(
        default=2.0,
        description="Seconds the gateway caches a project's routes (models, default, A/B test); "
        "a configuration change reaches running gateways within this time.",
    )
    ab_check_seconds: float = Field(
        default=10.0,
        description="Seconds between two checks of the active A/B tests for a significant result "
        "(mSPRT); 0 disables ending tests automatically.",
    )
    body_timeout_seconds: float = Field(
        default=30.0, description="Seconds a client may take to send a whole request body."
    )
    read_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Seconds one read-back query (REST, GraphQL, the filter checks of exports) "
        "may run before it is stopped (REST 503 `query_timeout`); 0 means no limit.",
    )
    max_json_depth: int = Field(
        default=64, description="Deepest nesting of arrays and objects accepted in a JSON body."
    )
    max_labels: int = Field(
        default=64, description="Most labels (metadata pairs) accepted on one interaction."
    )
    graphql_max_tokens: int = Field(
        default=3000,
        ge=1,
        description="Most tokens (names, values, punctuation) in one GraphQL document, which "
        "may also be at most 50 characters per token long; the parser stops past them (400 "
        "`query_too_long`).",
    )
    graphql_max_depth: int = Field(
        default=12,
        ge=1,
        description="Deepest nesting of fields in one GraphQL operation (`{ metrics { key } }` "
        "is 2); 400 `query_too_deep` beyond.",
    )
    graphql_max_aliases: int = Field(
        default=30,
        ge=0,
        description="Most aliased fields in one GraphQL operation, counted once per place a "
        "fragment is spread; 400 `too_many_aliases` beyond.",
    )
    graphql_max_cost: int = Field(
        default=10_000,
        ge=1,
        description="Most completions one GraphQL operation may ask for: each `completions` "
        "page's `first` (100 when absent) times the lists around it (a `completionsGrouped` "
        "counts as 100 and as 10 groups); 400 `query_too_costly` beyond.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client may take to send a request's line and headers, from when "
        "the connection opens or the previous response ends; 408 and the connection closed after.",
    )
    max_label_key_length: int = Field(
        default=128, description="Longest label key accepted, in characters."
    )
    max_label_value_length: int = Field(
        default=1000,
        description="Longest label value accepted, in characters (and never more than 2,000 "
        "bytes of UTF-8: what the store's label index holds).",
    )
    writer_batch_size: int = Field(
        default=2000, description="Most interactions the background writer puts in one batch."
    )
    writer_interval: float = Field(
        default=0.05, description="Seconds the background writer waits to gather a batch."
    )
    sqlite_writer_process: bool = Field(
        default=True,
        description="On a SQLite file, bulk ingest hands its rows to a child process that "
        "writes them, so the gateway parses while it writes (store/sqlite_writer.py).",
    )
    analytics_path: str | None = Field(
        default=None,
        description="Where the analytics store keeps its Parquet files: default `NAME.analytics/` "
        "beside a SQLite store `NAME.db`, `interlog-analytics/` in the working directory for "
        "PostgreSQL; any path DuckDB writes (object storage too). Fixed when the analytics "
        "store is created.",
    )
    analytics_sync: bool = Field(
        default=True,
        description="Gateway processes keep the analytics store in sync with the store (one at a "
        "time, in a child process); false leaves it to `interlog analytics sync --follow`.",
    )
    analytics_sync_interval: float = Field(
        default=0.5,
        description="Seconds between two syncs of the analytics store (new rows reach analytics "
        "within about this time).",
    )
    analytics_reader: bool = Field(
        default=True,
        description="Gateway processes answer analytics and exports from a reader child process, "
        "so that their own memory stays what chat needs (store/analytics/reader.py); false "
        "answers them in the gateway process.",
    )
    analytics_reader_max_mb: int = Field(
        default=600,
        ge=1,
        description="A reader child whose resident memory passed this many MB ends once no call "
        "is running; the next call starts a new one (DuckDB and the allocator keep what a large "
        "export used).",
    )
    analytics_build_workers: int = Field(
        default=0,
        ge=0,
        description="Processes that write the analytics store's first build side by side "
        "(store/analytics/build.py): 0 is one per CPU, at most 4; 1 writes it in the sync "
        "process alone.",
    )
    analytics_memory_limit: str = Field(
        default="512MB",
        description="Most memory DuckDB may use for analytics in one process (it spills to a "
        "temporary directory beyond it), e.g. 256MB or 2GB.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
