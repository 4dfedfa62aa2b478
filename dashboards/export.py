"""Decisions out of the database into ``DIR/decisions.parquet``, which shard builds read.

One row per clip and annotator: that annotator's standing (latest) decision, with
``clip_id, annotator, decision, reason, note, decided_at``. ``emoforge shards build
DIR --out OUT --set exclude=DIR/decisions.parquet`` drops every clip that any
annotator's standing decision rejects (``shards/manifest.py: load_rejections`` keeps
rows whose ``decision`` is ``reject``). Written under a temporary name and renamed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from emoforge.dashboards.db import Database
from emoforge.dashboards.queries import latest_decisions

DECISIONS_FILE = "decisions.parquet"
COLUMNS = ("clip_id", "annotator", "decision", "reason", "note", "decided_at")


def export_decisions(db: Database, data_dir: Path) -> tuple[Path, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = latest_decisions(db)
    schema = pa.schema([
        ("clip_id", pa.string()), ("annotator", pa.string()), ("decision", pa.string()), ("reason", pa.string()),
        ("note", pa.string()), ("decided_at", pa.timestamp("us", tz="UTC")),
    ])
    from datetime import datetime

    columns = {name: [row[name] for row in rows] for name in COLUMNS}
    columns["decided_at"] = [datetime.fromisoformat(value.replace("Z", "+00:00")) for value in columns["decided_at"]]
    table = pa.table(columns, schema=schema)
    path = Path(data_dir) / DECISIONS_FILE
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)
    return path, len(rows)
