"""The analytics store's tables, derived from store.models (one definition of every column).

Three log tables are mirrored: interaction -> `interactions`, metric_value -> `metric_values`,
comparison -> `comparisons`. Each column keeps its name; its DuckDB type follows from the
SQLAlchemy type. Derived columns are added where a question needs them: `labels` becomes a
`MAP(VARCHAR, VARCHAR)` (filters read one key without parsing JSON), and interactions get
`prompt_text` (the text of the prompt's last message, for free-text search). JSON columns
(messages, params) stay JSON text. The small configuration tables (project, model, metric,
ab_test) are not mirrored: readers take them from the relational store (store/analytics/lake.py),
so a new metric or an ended A/B test is seen at once.

`LAYOUT_VERSION` changes whenever the layout changes in a way existing files cannot follow; the
sync then rebuilds the analytics store from the relational store.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, Boolean, Float, Integer, String, Table, Text, Uuid

from store.models import Comparison, Interaction, MetricValue
from store.types import UTCDateTime

LAYOUT_VERSION = 4  # 4: interactions.tool_calls (migration 0006)

#: Derived columns: (table, name, DuckDB type, SQL over the staged source row `s`).
_LABEL_MAP = "json_transform(labels, '\"MAP(VARCHAR, VARCHAR)\"')"  # over the source row
#: The last message's content, taken out of the messages once (staged_source): every JSON
#: function parses its whole document, and the messages are most of an interaction's bytes
#: (reading them twice, for the type and then for the text, cost ~1 s of CPU per 1M
#: interactions in the initial build).
_LAST_CONTENT = "json_extract(messages, '$[#-1].content')"
#: The text of the prompt's last message (a string, or the text parts of a list), for search:
#: what the user asked, without the system prompt and the earlier turns every interaction of a
#: session repeats (they would double the text the analytics store holds and scans).
_PROMPT_TEXT = (
    "CASE json_type(s.last_content) WHEN 'ARRAY' THEN "
    "array_to_string(json_extract_string(s.last_content, '$[*].text'), chr(10)) "
    "ELSE json_extract_string(s.last_content, '$') END"
)


@dataclass(frozen=True)
class Column:
    """One column of an analytics table, and how a staged source row becomes its value."""

    name: str
    duck_type: str
    kind: str  # how the relational store hands it over: uuid, ts, json, text, int, float, bool
    expression: str  # DuckDB SQL over the staged row `s`
    derived: bool = False  # computed here, not read from the store


@dataclass(frozen=True)
class LakeTable:
    """A relational table and its analytics mirror."""

    name: str  # the analytics table
    source: str  # the relational table
    key: str  # primary key column (a UUID)
    columns: tuple[Column, ...]

    @property
    def source_columns(self) -> tuple[Column, ...]:
        """The columns read from the relational store, in order."""
        return tuple(column for column in self.columns if not column.derived)

    def ddl(self, schema: str) -> str:
        body = ", ".join(f"{column.name} {column.duck_type}" for column in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {schema}.{self.name} ({body})"


def _kind(sa_type: object) -> tuple[str, str]:
    """(kind, DuckDB type) of a SQLAlchemy column type."""
    if isinstance(sa_type, UTCDateTime):
        return "ts", "TIMESTAMPTZ"
    if isinstance(sa_type, Uuid):
        return "uuid", "UUID"
    if isinstance(sa_type, JSON) or "JSON" in type(sa_type).__name__:
        return "json", "VARCHAR"
    if isinstance(sa_type, Boolean):
        return "bool", "BOOLEAN"
    if isinstance(sa_type, Integer):  # BigInteger too; token counts may pass 2**31
        return "int", "BIGINT"
    if isinstance(sa_type, Float):
        return "float", "DOUBLE"
    if isinstance(sa_type, String | Text) or type(sa_type).__name__ == "AutoString":
        return "text", "VARCHAR"
    raise TypeError(f"no analytics type for {sa_type!r}")


def _cast(name: str, kind: str, duck_type: str) -> str:
    if kind == "ts":
        return f"CAST(CAST(s.{name} AS TIMESTAMP) AS TIMESTAMPTZ)"
    return f"CAST(s.{name} AS {duck_type})"


def _mirror(name: str, model: type, *, derived: tuple[Column, ...] = ()) -> LakeTable:
    table: Table = model.__table__  # type: ignore[attr-defined]
    columns = []
    for column in table.columns:
        kind, duck_type = _kind(column.type)
        if column.name == "labels":  # read as JSON text, kept as a map
            columns.append(Column("labels", "MAP(VARCHAR, VARCHAR)", kind, "s.label_map"))
            continue
        columns.append(Column(column.name, duck_type, kind, _cast(column.name, kind, duck_type)))
    (key,) = (column.name for column in table.primary_key.columns)
    return LakeTable(name, table.name, key, (*columns, *derived))


#: Label keys with a column of their own in `interactions` (label_0, label_1, ...): the first
#: MAX_LABEL_COLUMNS keys the sync sees. A filter or grouping on one reads that column (a
#: label filter on 1M interactions: ~18 ms on a column, ~75 ms through the map). The columns
#: exist from the start, all NULL until a key takes one: no schema change ever happens under
#: readers (a DuckLake reader that cached the catalog failed on a column added meanwhile).
MAX_LABEL_COLUMNS = 32
INTERACTIONS = _mirror(
    "interactions",
    Interaction,
    derived=(
        Column("prompt_text", "VARCHAR", "text", _PROMPT_TEXT, derived=True),
        *(
            Column(f"label_{n}", "VARCHAR", "text", "NULL", derived=True)
            for n in range(MAX_LABEL_COLUMNS)
        ),
    ),
)
METRIC_VALUES = _mirror("metric_values", MetricValue)
COMPARISONS = _mirror("comparisons", Comparison)
TABLES = (INTERACTIONS, METRIC_VALUES, COMPARISONS)
BY_SOURCE = {table.source: table for table in TABLES}

LABEL_COLUMNS_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.label_columns (key VARCHAR, column_name VARCHAR)"
)


def staged_source(table: LakeTable, source: str) -> str:
    """SOURCE (the store's rows of TABLE) with what the column expressions need: for
    interactions, the labels parsed once into `label_map` and the last message's content
    into `last_content`."""
    if table.name != "interactions":
        return f"{source} s"
    return f"(SELECT *, {_LABEL_MAP} AS label_map, {_LAST_CONTENT} AS last_content FROM {source}) s"


#: The sync's own state, in the same transactions as the rows it describes.
SYNC_STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.sync_state ("
    "id INTEGER, layout INTEGER, position VARCHAR, synced_at TIMESTAMPTZ, "
    "complete BOOLEAN, rows_synced BIGINT)"
)
