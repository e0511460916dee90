"""The journal: append, torn lines, per-process locking, orphan replay, segment cleanup."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.journal import Journal, read_segment, segment_name


def _record(n: int = 0) -> dict[str, Any]:
    return {
        "completion_id": str(uuid.uuid4()),
        "project_id": 1,
        "session_id": str(uuid.uuid4()),
        "created_at": "2026-01-01T00:00:00+00:00",
        "completion": f"answer {n}",
    }


def _segment_files(base: Path) -> list[Path]:
    return sorted(base.glob("*/seg-*.jsonl"))


@pytest.mark.parametrize("fsync", ["entry", "batch", "never"])
def test_appended_records_are_on_disk_and_pending(tmp_path: Path, fsync: Any) -> None:
    journal = Journal(tmp_path, fsync=fsync)
    journal.open()
    records = [_record(n) for n in range(3)]

    async def append_concurrently() -> None:
        await asyncio.gather(*(journal.append([record]) for record in records))

    asyncio.run(append_concurrently())
    on_disk = [r for path in _segment_files(tmp_path) for r in read_segment(path)]
    assert sorted(r["completion_id"] for r in on_disk) == sorted(
        r["completion_id"] for r in records
    )
    assert journal.depth == 3
    assert all(journal.is_pending(r["completion_id"]) for r in records)
    journal.close()


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / segment_name(1)
    good = _record()
    path.write_bytes(orjson.dumps(good) + b"\n" + b'{"completion_id": "abc", "proj')
    assert [r["completion_id"] for r in read_segment(path)] == [good["completion_id"]]


def test_finished_segments_are_deleted_and_clean_close_removes_the_directory(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path, fsync="never")
    journal.open()
    journal.append_nowait([_record(n) for n in range(5)])
    assert journal.directory is not None
    assert len(_segment_files(tmp_path)) == 1
    journal.mark_done(3)
    assert journal.depth == 2
    journal.mark_done(2)
    assert journal.depth == 0
    # Everything stored: the finished segment is gone, a fresh empty one takes its place.
    files = _segment_files(tmp_path)
    assert len(files) == 1 and files[0].stat().st_size == 0
    directory = journal.directory
    journal.close()
    assert not directory.exists()


def test_unstored_entries_survive_close_and_are_replayed_by_the_next_journal(
    tmp_path: Path,
) -> None:
    first = Journal(tmp_path, fsync="batch")
    first.open()
    records = [_record(n) for n in range(4)]
    first.append_nowait(records)
    first.mark_done(1)
    first.close()

    second = Journal(tmp_path, fsync="batch")
    second.open()
    assert second.replayed == 4  # the done one too: replay is idempotent in the store
    assert [e.completion_id for e in second.peek(10)] == [r["completion_id"] for r in records]
    assert second.directory is not None
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == [second.directory]
    second.close()


def test_a_live_process_journal_is_never_claimed(tmp_path: Path) -> None:
    owner = Journal(tmp_path, fsync="never")
    owner.open()
    owner.append_nowait([_record()])
    other = Journal(tmp_path, fsync="never")
    other.open()
    assert other.replayed == 0 and other.depth == 0
    assert owner.directory is not None and owner.directory.exists()
    lock = os.open(owner.directory / "lock", os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(lock)
    other.close()
    owner.close()


def test_journal_of_a_killed_process_is_claimed_with_its_torn_line_ignored(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import os, uuid
        from ingest.journal import Journal
        journal = Journal({str(tmp_path)!r}, fsync="entry")
        journal.open()
        for n in range(3):
            journal.append_nowait([{{"completion_id": str(uuid.UUID(int=n + 1)),
                                    "project_id": 1, "session_id": str(uuid.uuid4()),
                                    "created_at": "2026-01-01T00:00:00+00:00"}}])
        fd = journal._current_fd()
        os.write(fd, b'{{"completion_id": "torn')
        os._exit(9)  # dies holding the lock; the kernel releases it
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False, cwd=Path.cwd())
    survivor = Journal(tmp_path, fsync="batch")
    survivor.open()
    assert [e.completion_id for e in survivor.peek(10)] == [
        str(uuid.UUID(int=n + 1)) for n in range(3)
    ]
    survivor.close()


def test_rejected_entries_are_kept_in_a_file_not_dropped(tmp_path: Path) -> None:
    journal = Journal(tmp_path, fsync="never")
    journal.open()
    record = _record()
    journal.append_nowait([record])
    journal.reject(journal.peek(1), "IntegrityError: bad project")
    journal.mark_done(1)
    kept = [orjson.loads(line) for line in journal.rejected_path.read_bytes().splitlines()]
    assert kept == [{"error": "IntegrityError: bad project", "record": record}]
    journal.close()


def test_fsync_policy_decides_who_syncs(tmp_path: Path) -> None:
    """`entry` syncs before append returns; `batch` and `never` leave it to `sync()`."""

    async def appended_unsynced(fsync: Any) -> tuple[int, int]:
        journal = Journal(tmp_path / fsync, fsync=fsync)
        journal.open()
        await asyncio.gather(*(journal.append([_record(n)]) for n in range(5)))
        before = journal.unsynced
        await journal.sync()
        after = journal.unsynced
        journal.close()
        return before, after

    assert asyncio.run(appended_unsynced("entry")) == (0, 0)
    assert asyncio.run(appended_unsynced("batch")) == (5, 0)
    assert asyncio.run(appended_unsynced("never")) == (5, 0)


def test_only_the_first_records_stay_in_memory_the_rest_are_read_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path, fsync="never", memory_entries=5)
    journal.open()
    records = [_record(n) for n in range(20)]

    async def append() -> None:
        await journal.append(records[:3])
        for record in records[3:]:
            await journal.append([record])

    asyncio.run(append())
    assert journal.depth == 20 and journal.in_memory == 5
    assert [entry.record for entry in journal.peek(20)] == records
    journal.mark_done(8)  # 5 from memory and 3 read back from disk
    assert journal.depth == 12 and journal.in_memory == 0
    assert [entry.record["completion"] for entry in journal.peek(3)] == [
        "answer 8",
        "answer 9",
        "answer 10",
    ]
    journal.close()
