"""The download ledger: one SQLite row per source, so reruns skip finished downloads.

Only ``status == "ok"`` rows whose file is still present count as done; ``failed`` and
``rejected`` rows are kept for the manifest and their attempt count, and are tried
again on the next run. A takedown flag, once set, is never cleared by a download.

SQLite (WAL journal, one short connection per call, ``BEGIN IMMEDIATE`` for writes)
makes concurrent updates from many processes and Ray workers on one machine safe and
gives indexed lookups at corpus scale. Like every file lock it needs a local disk, not
NFS.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

__all__ = ["Ledger", "LedgerRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    source_id   TEXT PRIMARY KEY,
    status      TEXT NOT NULL,              -- ok | failed | rejected
    reason      TEXT,
    file_name   TEXT,                       -- <source_id>.<ext>, inside the ledger's folder
    bytes       INTEGER NOT NULL DEFAULT 0,
    sha256      TEXT NOT NULL DEFAULT '',
    archive_key TEXT,                       -- "<Extractor>:<id>" for site extractors, else NULL
    provenance  TEXT NOT NULL DEFAULT '{}', -- JSON; untrusted text from the internet
    attempts    INTEGER NOT NULL DEFAULT 0,
    takedown    TEXT,                       -- reason, when taken down
    updated_s   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS downloads_archive_key ON downloads (archive_key);
"""


@dataclass(frozen=True)
class LedgerRecord:
    source_id: str
    status: str
    reason: str | None
    file_name: str | None
    bytes: int
    sha256: str
    archive_key: str | None
    provenance: dict
    attempts: int
    takedown: str | None


class Ledger:
    """Ledger at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Autocommit mode; writers open their own IMMEDIATE transaction.
        with closing(sqlite3.connect(self.path, timeout=60.0, isolation_level=None)) as connection:
            yield connection

    @staticmethod
    def _row(row: tuple) -> LedgerRecord:
        source_id, status, reason, file_name, size, sha256, archive_key, provenance, attempts, takedown = row
        return LedgerRecord(
            source_id, status, reason, file_name, size, sha256, archive_key, json.loads(provenance), attempts, takedown
        )

    _COLUMNS = "source_id, status, reason, file_name, bytes, sha256, archive_key, provenance, attempts, takedown"

    def get(self, source_id: str) -> LedgerRecord | None:
        with self._connect() as connection:
            row = connection.execute(
                f"SELECT {self._COLUMNS} FROM downloads WHERE source_id = ?", (source_id,)
            ).fetchone()
        return None if row is None else self._row(row)

    def records(self) -> list[LedgerRecord]:
        """Every row, ordered by source id (for the manifest)."""
        with self._connect() as connection:
            rows = connection.execute(f"SELECT {self._COLUMNS} FROM downloads ORDER BY source_id").fetchall()
        return [self._row(row) for row in rows]

    def finished_with_key(self, archive_key: str) -> str | None:
        """Source id of a finished download of the same site video, if any."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT source_id FROM downloads WHERE archive_key = ? AND status = 'ok' LIMIT 1", (archive_key,)
            ).fetchone()
        return None if row is None else row[0]

    def record(
        self,
        source_id: str,
        status: str,
        reason: str | None,
        file_name: str | None,
        size: int,
        sha256: str,
        archive_key: str | None,
        provenance: dict,
        attempts: int,
    ) -> LedgerRecord:
        """Upsert the outcome of ``attempts`` more attempts; keeps any takedown flag."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            previous = connection.execute(
                "SELECT attempts, takedown FROM downloads WHERE source_id = ?", (source_id,)
            ).fetchone()
            total, takedown = (previous[0] + attempts, previous[1]) if previous else (attempts, None)
            connection.execute(
                "INSERT OR REPLACE INTO downloads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    source_id, status, reason, file_name, size, sha256, archive_key,
                    json.dumps(provenance, ensure_ascii=False, sort_keys=True), total, takedown, time.time(),
                ),
            )
            connection.execute("COMMIT")
        return self.get(source_id)  # type: ignore[return-value]

    def mark_takedown(self, source_id: str, reason: str) -> None:
        """Flag a source as taken down; the downloader deletes its file and never fetches it again."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            updated = connection.execute(
                "UPDATE downloads SET takedown = ?, updated_s = ? WHERE source_id = ?", (reason, time.time(), source_id)
            ).rowcount
            if not updated:
                connection.execute(
                    "INSERT INTO downloads (source_id, status, reason, takedown, updated_s) VALUES (?, 'rejected', ?, ?, ?)",
                    (source_id, f"takedown: {reason}", reason, time.time()),
                )
            connection.execute("COMMIT")
