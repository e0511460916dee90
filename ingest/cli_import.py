"""`interlog import FILE.jsonl`: log interactions made elsewhere, in batches, with a progress bar.

Each line is one interaction in the body format of POST /api/v1/interactions. With `--url` and
`--api-key` the batches go to a running gateway's bulk endpoint (the key's project rules
apply); without `--url` they are written straight into the store of INTERLOG_DATABASE_URL
(as an admin would). Bad lines are reported with their line number; good lines are kept.
Lines with a `completion_id` can be imported again without creating duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx


def _batches(path: Path, size: int) -> Iterator[list[tuple[int, Any]]]:
    """(line number, parsed JSON or the parse error) in batches; blank lines are skipped."""
    import orjson

    batch: list[tuple[int, Any]] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                batch.append((number, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                batch.append((number, ValueError(f"not valid JSON: {exc}")))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _post_batch(
    client: httpx.Client, url: str, key: str, batch: list[tuple[int, Any]]
) -> list[tuple[int, str]]:
    import orjson

    errors = [(n, str(item)) for n, item in batch if isinstance(item, Exception)]
    good = [(n, item) for n, item in batch if not isinstance(item, Exception)]
    if not good:
        return errors
    response = client.post(
        f"{url.rstrip('/')}/api/v1/interactions/bulk",
        content=orjson.dumps({"interactions": [item for _, item in good]}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    if response.status_code != 200:
        raise typer.BadParameter(f"the gateway answered {response.status_code}: {response.text}")
    for (number, _), result in zip(good, response.json()["results"], strict=True):
        if result.get("error"):
            errors.append((number, result["error"]["message"]))
    return errors


def _write_batch(
    engine: Any, names: Any, project: str | None, batch: list[tuple[int, Any]]
) -> list[tuple[int, str]]:
    from ingest.errors import ApiError
    from ingest.logged_items import prepare_item
    from store.keys import Principal
    from store.logged_interactions import write_logged_interactions
    from store.settings import get_settings

    principal = Principal(is_admin=True)
    errors: list[tuple[int, str]] = []
    numbers, records, feedbacks = [], [], []
    for number, raw in batch:
        try:
            if isinstance(raw, Exception):
                raise raw
            if project and isinstance(raw, dict) and not raw.get("project"):
                raw = {**raw, "project": project}
            record, item_feedbacks = prepare_item(
                raw, principal=principal, names=names, settings=get_settings()
            )
        except (ApiError, ValueError) as exc:
            errors.append((number, getattr(exc, "message", str(exc))))
            continue
        numbers.append(number)
        records.append(record)
        feedbacks.append(item_feedbacks)
    if records:
        results = write_logged_interactions(engine, records=records, feedbacks=feedbacks)
        for number, result in zip(numbers, results, strict=True):
            if result.error is not None:
                errors.append((number, str(result.error)))
    return errors


def import_interactions(
    file: Annotated[Path, typer.Argument(help="JSON lines, one interaction per line.")],
    url: Annotated[
        str | None, typer.Option(help="Gateway base URL; omit to write to the store directly.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --url.")] = None,
    project: Annotated[
        str | None, typer.Option(help="Project for lines without one (direct mode).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Interactions per batch.")] = 1000,
) -> None:
    """Import interactions from a JSONL file (progress bar; bad lines reported, good kept)."""
    import httpx
    from tqdm import tqdm

    from store.db import create_store_engine
    from store.logged_interactions import read_catalog_names
    from store.settings import get_settings

    if not file.exists():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    if url and not api_key:
        raise typer.BadParameter("--url needs --api-key", param_hint="--api-key")
    total_lines = sum(1 for line in file.open("rb") if line.strip())
    errors: list[tuple[int, str]] = []
    engine = None if url else create_store_engine(get_settings().database_url)
    try:
        names = read_catalog_names(engine) if engine is not None else None
        with (
            httpx.Client(timeout=300) as client,
            tqdm(total=total_lines, unit="interactions", desc=file.name) as progress,
        ):
            for batch in _batches(file, batch_size):
                if url and api_key:
                    errors.extend(_post_batch(client, url, api_key, batch))
                else:
                    errors.extend(_write_batch(engine, names, project, batch))
                progress.update(len(batch))
    finally:
        if engine is not None:
            engine.dispose()
    for number, message in sorted(errors)[:50]:
        typer.echo(f"line {number}: {message}", err=True)
    if len(errors) > 50:
        typer.echo(f"... and {len(errors) - 50} more bad lines", err=True)
    typer.echo(f"imported {total_lines - len(errors)} interactions, {len(errors)} bad lines")
    if errors:
        raise typer.Exit(1)
