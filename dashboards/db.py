"""The dashboards' one small SQL layer: SQLite (WAL) by default, PostgreSQL by URL.

SQL is written once with ``?`` placeholders and portable types; the PostgreSQL side
rewrites the placeholders for psycopg. Each thread gets its own connection (the web
server answers from a thread pool). Writes run in short explicit transactions
(``BEGIN IMMEDIATE`` on SQLite, so two writers queue on the busy timeout instead of
failing on a lock upgrade). Decisions are append-only rows, so two annotators deciding
at once can never overwrite each other.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from pathlib import Path
from urllib.parse import urlparse

from emoforge.errors import UserError

SCHEMA_VERSION = 1

# Portable DDL; "{id}" becomes the dialect's auto-increment primary key.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)""",
    """CREATE TABLE IF NOT EXISTS annotators (
        name TEXT PRIMARY KEY,
        token_sha256 TEXT UNIQUE,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS decisions (
        id {id},
        request_id TEXT UNIQUE,
        clip_id TEXT NOT NULL,
        annotator TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'flag')),
        reason TEXT,
        note TEXT,
        decided_at TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS decisions_clip ON decisions (clip_id, annotator, id)""",
    """CREATE INDEX IF NOT EXISTS decisions_annotator ON decisions (annotator, id)""",
    """CREATE TABLE IF NOT EXISTS notes (
        id {id},
        clip_id TEXT NOT NULL,
        annotator TEXT NOT NULL,
        frame INTEGER,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS notes_clip ON notes (clip_id, id)""",
    # The clip index: one row per manifest clip, plus statistics read from its labels.
    """CREATE TABLE IF NOT EXISTS clips (
        clip_id TEXT PRIMARY KEY,
        source_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        title TEXT,
        license TEXT,
        language TEXT,
        n_frames INTEGER,
        duration_s DOUBLE PRECISION,
        has_media INTEGER NOT NULL DEFAULT 0,
        speed_bucket INTEGER,
        mean_velocity_deg_per_s DOUBLE PRECISION,
        max_velocity_deg_per_s DOUBLE PRECISION,
        p95_abs_yaw_deg DOUBLE PRECISION,
        p95_abs_pitch_deg DOUBLE PRECISION,
        p95_abs_roll_deg DOUBLE PRECISION,
        median_face_width_px DOUBLE PRECISION,
        speech_fraction DOUBLE PRECISION,
        suspicion DOUBLE PRECISION,
        suspicion_reasons TEXT,
        qa_rank DOUBLE PRECISION NOT NULL,
        labels_signature TEXT)""",
)
CLIP_INDEXES = (
    "status", "reason", "source_id", "speed_bucket", "p95_abs_yaw_deg", "p95_abs_pitch_deg", "p95_abs_roll_deg",
    "median_face_width_px", "duration_s", "suspicion", "qa_rank", "mean_velocity_deg_per_s",
)


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'dashboard.sqlite'}"


class Database:
    """``Database("sqlite:///path")`` or ``Database("postgresql://user@host:port/db")``."""

    def __init__(self, url: str):
        self.url = url
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            self.dialect = "sqlite"
            # sqlite:////abs/path or sqlite:///relative/path
            self.path = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None
            if self.path is None or not str(self.path):
                raise UserError(f"bad SQLite URL {url!r}: use sqlite:///path/to/file.sqlite")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif parsed.scheme in ("postgresql", "postgres"):
            self.dialect = "postgres"
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise UserError("PostgreSQL needs psycopg: pip install 'emoforge[dashboards]'") from None
        else:
            raise UserError(f"unsupported database URL {url!r}: sqlite:///FILE or postgresql://...")
        self._local = threading.local()
        self._all: list = []
        self._lock = threading.Lock()

    # -- connections ------------------------------------------------------------------
    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.dialect == "sqlite":
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: 100k clips with their indexes stay in memory
            conn.execute("PRAGMA foreign_keys=ON")
        else:
            import psycopg
            from psycopg.rows import dict_row

            conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def _sql(self, sql: str) -> str:
        if self.dialect == "postgres":
            return sql.replace("%", "%%").replace("?", "%s")
        return sql

    # -- statements -------------------------------------------------------------------
    def query(self, sql: str, params=()) -> list[dict]:
        conn = self._connection()
        cursor = conn.execute(self._sql(sql), tuple(params))
        rows = cursor.fetchall()
        return [dict(row) for row in rows]

    def query_one(self, sql: str, params=()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params=()):
        row = self.query_one(sql, params)
        return None if row is None else next(iter(row.values()))

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction; yields ``run(sql, params)`` and ``run_many(sql, rows)``."""
        conn = self._connection()
        if self.dialect == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Writer(self, conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with conn.transaction():
                yield _Writer(self, conn)

    def execute(self, sql: str, params=()) -> int:
        with self.transaction() as tx:
            return tx.run(sql, params)

    # -- schema -----------------------------------------------------------------------
    def create_schema(self) -> None:
        auto_id = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
        with self.transaction() as tx:
            for statement in SCHEMA:
                tx.run(statement.replace("{id}", auto_id))
            create_clip_indexes(tx)
            tx.run(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        version = self.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        if version != str(SCHEMA_VERSION):
            raise UserError(f"database {self.describe()} has schema version {version}, this emoforge reads {SCHEMA_VERSION}")

    def get_meta(self, key: str) -> str | None:
        return self.scalar("SELECT value FROM meta WHERE key = ?", (key,))

    def set_meta(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def describe(self) -> str:
        """The URL without a password, for messages."""
        return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", self.url)


def create_clip_indexes(tx) -> None:
    for column in CLIP_INDEXES:
        tx.run(f"CREATE INDEX IF NOT EXISTS clips_{column} ON clips ({column}, clip_id)")


def drop_clip_indexes(tx) -> None:
    for column in CLIP_INDEXES:
        tx.run(f"DROP INDEX IF EXISTS clips_{column}")


class _Writer:
    def __init__(self, db: Database, conn):
        self._db = db
        self._conn = conn

    def run(self, sql: str, params=()) -> int:
        cursor = self._conn.execute(self._db._sql(sql), tuple(params))
        return cursor.rowcount

    def run_many(self, sql: str, rows) -> None:
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        if self._db.dialect == "sqlite":
            self._conn.executemany(sql, rows)
        else:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._db._sql(sql), rows)

    def query(self, sql: str, params=()) -> list[dict]:
        cursor = self._conn.execute(self._db._sql(sql), tuple(params))
        return [dict(row) for row in cursor.fetchall()]
