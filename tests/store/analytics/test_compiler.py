"""The analytics compiler's free-text search, checked against DuckDB's ILIKE (its old form)."""

from __future__ import annotations

import duckdb

from store.analytics.compiler import search_clause

#: Text with what case folding and LIKE make hard: Turkish dotted I, the Kelvin sign, sharp s,
#: final sigma, a combining accent, emoji, and LIKE's own special characters.
TEXTS = [
    "Kotlin and Java",
    "KOTLIN",
    "kotlİn",
    "\u212aotlin",
    "straße STRASSE",
    "ΟΔΟΣ οδος",
    "cafe\u0301 CAFÉ",
    "100% sure_ok \\path",
    "a_b a%b",
    "😀 smile",
    "",
]
NEEDLES = ["kotlin", "KOTLİN", "k", "İ", "ß", "ς", "Σ", "É", "%", "_", "\\", "a%b", "_ok", "😀"]


def test_search_answers_exactly_as_ilike_did() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE interactions (prompt_text VARCHAR, completion VARCHAR)")
    rows = [(text, other) for text in [*TEXTS, None] for other in (None, "plain words")]
    con.executemany("INSERT INTO interactions VALUES (?, ?)", rows)
    for needle in NEEDLES:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        ilike = (
            "(i.prompt_text ILIKE ? ESCAPE '\\' OR i.completion ILIKE ? ESCAPE '\\')",
            [f"%{escaped}%"] * 2,
        )
        params: list[object] = []
        clause = (search_clause(needle, params), params)
        answers = [
            con.execute(
                f"SELECT list(coalesce({where}, false) ORDER BY rowid) FROM interactions i",
                values,
            ).fetchone()
            for where, values in (ilike, clause)
        ]
        assert answers[0] == answers[1], needle
    params = []
    where = search_clause("KOTLIN", params)
    found = con.execute(f"SELECT count(*) FROM interactions i WHERE {where}", params).fetchone()
    assert found == (8,)  # 'Kotlin', 'KOTLIN', 'kotlİn' and the Kelvin sign's, each twice
