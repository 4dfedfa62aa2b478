"""What the pages ask the database: the clip list (filters, sort, pages), queues, decisions, agreement.

Every user-supplied value travels as a bound parameter; column names and sort keys
come from fixed tables in this file, never from the request.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from emoforge.dashboards.db import Database
from emoforge.errors import UserError

DECISIONS = ("accept", "reject", "flag")
REJECT_REASONS = (
    "wrong face box",
    "wrong head pose",
    "speed labels wrong",
    "not talking / no speech",
    "several faces",
    "face cut off / bad crop",
    "blurred / low quality",
    "audio out of sync",
    "not a real face",
    "other",
)
QA_FRACTION = 0.05  # the QA sample: this share of playable clips, fixed per clip id
ANNOTATOR_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MAX_NOTE = 2000
MAX_REASON = 200
MAX_PAGE_SIZE = 200

SORT_KEYS = {
    "clip_id": "c.clip_id",
    "source": "c.source_id",
    "status": "c.status",
    "reason": "c.reason",
    "duration": "c.duration_s",
    "speed_bucket": "c.speed_bucket",
    "velocity": "c.mean_velocity_deg_per_s",
    "max_velocity": "c.max_velocity_deg_per_s",
    "yaw": "c.p95_abs_yaw_deg",
    "pitch": "c.p95_abs_pitch_deg",
    "roll": "c.p95_abs_roll_deg",
    "face": "c.median_face_width_px",
    "speech": "c.speech_fraction",
    "suspicion": "c.suspicion",
    "qa": "c.qa_rank",
}
RANGE_FILTERS = {  # query parameter prefix -> column (p95 of |angle| for the pose axes)
    "yaw": "c.p95_abs_yaw_deg",
    "pitch": "c.p95_abs_pitch_deg",
    "roll": "c.p95_abs_roll_deg",
    "face": "c.median_face_width_px",
    "duration": "c.duration_s",
    "velocity": "c.mean_velocity_deg_per_s",
}
QUEUES = ("all", "unreviewed", "qa", "suspicious", "mine", "disagreements")
LIST_COLUMNS = (
    "clip_id", "source_id", "status", "reason", "title", "license", "language", "n_frames", "duration_s", "has_media",
    "speed_bucket", "mean_velocity_deg_per_s", "max_velocity_deg_per_s", "p95_abs_yaw_deg", "p95_abs_pitch_deg",
    "p95_abs_roll_deg", "median_face_width_px", "speech_fraction", "suspicion", "suspicion_reasons",
)
# The latest decision of each annotator on a clip.
LATEST = "d.id = (SELECT MAX(d2.id) FROM decisions d2 WHERE d2.clip_id = d.clip_id AND d2.annotator = d.annotator)"


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_annotator(name: str) -> str:
    if not isinstance(name, str) or not ANNOTATOR_PATTERN.match(name):
        raise UserError("annotator names are 1-40 letters, digits, '.', '_' or '-'")
    return name


def _float(params: dict, key: str) -> float | None:
    value = params.get(key)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{key} must be a number") from None


@dataclass
class ClipQuery:
    where: list[str]
    args: list
    order: str


def build_clip_query(params: dict, annotator: str | None) -> ClipQuery:
    """WHERE and ORDER BY for the clip list from request parameters (a plain dict of strings)."""
    where: list[str] = []
    args: list = []
    for key, column in (("status", "c.status"), ("reason", "c.reason"), ("source", "c.source_id"),
                        ("license", "c.license"), ("language", "c.language")):
        value = params.get(key)
        if value:
            if value == "(none)":
                where.append(f"{column} IS NULL")
            else:
                where.append(f"{column} = ?")
                args.append(str(value))
    if params.get("speed_bucket") not in (None, ""):
        try:
            args.append(int(params["speed_bucket"]))
        except ValueError:
            raise UserError("speed_bucket must be an integer") from None
        where.append("c.speed_bucket = ?")
    for prefix, column in RANGE_FILTERS.items():
        low, high = _float(params, f"{prefix}_min"), _float(params, f"{prefix}_max")
        if low is not None:
            where.append(f"{column} >= ?")
            args.append(low)
        if high is not None:
            where.append(f"{column} <= ?")
            args.append(high)
    if params.get("media") == "yes":
        where.append("c.has_media = 1")
    reviewed = params.get("reviewed")
    if reviewed in ("yes", "no"):
        where.append(("" if reviewed == "yes" else "NOT ") + "EXISTS (SELECT 1 FROM decisions d WHERE d.clip_id = c.clip_id)")
    if params.get("decision"):
        if params["decision"] not in DECISIONS:
            raise UserError(f"decision must be one of {', '.join(DECISIONS)}")
        where.append(f"EXISTS (SELECT 1 FROM decisions d WHERE d.clip_id = c.clip_id AND d.decision = ? AND {LATEST})")
        args.append(params["decision"])
    if params.get("review_reason"):
        where.append(f"EXISTS (SELECT 1 FROM decisions d WHERE d.clip_id = c.clip_id AND d.reason = ? AND {LATEST})")
        args.append(str(params["review_reason"]))
    if params.get("q"):
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", str(params["q"])[:100]) + "%"
        where.append("(c.clip_id LIKE ? ESCAPE '\\' OR c.title LIKE ? ESCAPE '\\')")
        args += [pattern, pattern]

    queue = params.get("queue") or "all"
    if queue not in QUEUES:
        raise UserError(f"queue must be one of {', '.join(QUEUES)}")
    order = None
    mine = "EXISTS (SELECT 1 FROM decisions d WHERE d.clip_id = c.clip_id AND d.annotator = ?)"
    if queue == "unreviewed":
        where.append("NOT EXISTS (SELECT 1 FROM decisions d WHERE d.clip_id = c.clip_id)")
    elif queue == "qa":
        where += ["c.has_media = 1", "c.qa_rank < ?"]
        args.append(QA_FRACTION)
        if annotator:
            where.append("NOT " + mine)
            args.append(annotator)
        order = "c.qa_rank ASC, c.clip_id ASC"
    elif queue == "suspicious":
        where.append("c.suspicion > 0")
        if annotator:
            where.append("NOT " + mine)
            args.append(annotator)
        order = "c.suspicion DESC, c.clip_id ASC"
    elif queue == "mine":
        if not annotator:
            raise UserError("the 'mine' queue needs an annotator")
        where.append(mine)
        args.append(annotator)
    elif queue == "disagreements":
        where.append(
            f"(SELECT COUNT(DISTINCT d.decision) FROM decisions d WHERE d.clip_id = c.clip_id AND {LATEST}) > 1"
        )

    sort = params.get("sort")
    if sort:
        if sort not in SORT_KEYS:
            raise UserError(f"sort must be one of {', '.join(SORT_KEYS)}")
        direction = "DESC" if params.get("order") == "desc" else "ASC"
        column = SORT_KEYS[sort]
        order = f"({column} IS NULL) ASC, {column} {direction}, c.clip_id ASC"  # NULLs last in both dialects
    return ClipQuery(where, args, order or "c.clip_id ASC")


def list_clips(db: Database, params: dict, annotator: str | None = None) -> dict:
    query = build_clip_query(params, annotator)
    try:
        page = max(0, int(params.get("page") or 0))
        page_size = min(MAX_PAGE_SIZE, max(1, int(params.get("page_size") or 50)))
    except ValueError:
        raise UserError("page and page_size must be integers") from None
    where = ("WHERE " + " AND ".join(query.where)) if query.where else ""
    total = db.scalar(f"SELECT COUNT(*) AS n FROM clips c {where}", query.args)
    rows = db.query(
        f"SELECT {', '.join('c.' + col for col in LIST_COLUMNS)} FROM clips c {where} ORDER BY {query.order} LIMIT ? OFFSET ?",
        query.args + [page_size, page * page_size],
    )
    _attach_reviews(db, rows)
    return {"total": int(total or 0), "page": page, "page_size": page_size, "clips": rows}


def _attach_reviews(db: Database, rows: list[dict]) -> None:
    if not rows:
        return
    ids = [row["clip_id"] for row in rows]
    marks = ", ".join("?" for _ in ids)
    latest = db.query(
        f"SELECT d.clip_id, d.annotator, d.decision, d.reason, d.decided_at FROM decisions d "
        f"WHERE d.clip_id IN ({marks}) AND {LATEST} ORDER BY d.id",
        ids,
    )
    by_clip: dict[str, list] = {}
    for decision in latest:
        by_clip.setdefault(decision["clip_id"], []).append(
            {k: decision[k] for k in ("annotator", "decision", "reason", "decided_at")}
        )
    for row in rows:
        row["reviews"] = by_clip.get(row["clip_id"], [])
        row["has_media"] = bool(row["has_media"])


def clip_detail(db: Database, clip_id: str) -> dict | None:
    row = db.query_one(f"SELECT {', '.join(LIST_COLUMNS)}, qa_rank FROM clips WHERE clip_id = ?", (clip_id,))
    if row is None:
        return None
    row["has_media"] = bool(row["has_media"])
    row["in_qa_sample"] = row.pop("qa_rank") < QA_FRACTION
    row["history"] = db.query(
        "SELECT id, annotator, decision, reason, note, decided_at FROM decisions WHERE clip_id = ? ORDER BY id", (clip_id,)
    )
    row["notes"] = db.query(
        "SELECT id, annotator, frame, text, created_at FROM notes WHERE clip_id = ? ORDER BY id", (clip_id,)
    )
    return row


def record_decision(db: Database, clip_id: str, annotator: str, decision: str, reason=None, note=None,
                    request_id: str | None = None) -> dict:
    """Append one decision. A repeated ``request_id`` (a retried request) is stored once."""
    check_annotator(annotator)
    if decision not in DECISIONS:
        raise UserError(f"decision must be one of {', '.join(DECISIONS)}")
    reason = (str(reason).strip()[:MAX_REASON] or None) if reason else None
    note = (str(note).strip()[:MAX_NOTE] or None) if note else None
    if decision == "reject" and not reason:
        raise UserError("a rejection needs a reason")
    if decision != "reject" and decision != "flag":
        reason = None
    if request_id is not None and (not isinstance(request_id, str) or not re.match(r"^[A-Za-z0-9_-]{8,64}$", request_id)):
        raise UserError("request_id must be 8-64 letters, digits, '_' or '-'")
    if db.scalar("SELECT 1 AS one FROM clips WHERE clip_id = ?", (clip_id,)) is None:
        raise LookupError(clip_id)
    decided_at = now_iso()
    with db.transaction() as tx:
        tx.run(
            "INSERT INTO decisions (request_id, clip_id, annotator, decision, reason, note, decided_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
            (request_id, clip_id, annotator, decision, reason, note, decided_at),
        )
    return {"clip_id": clip_id, "annotator": annotator, "decision": decision, "reason": reason, "note": note,
            "decided_at": decided_at}


def add_note(db: Database, clip_id: str, annotator: str, text: str, frame=None) -> dict:
    check_annotator(annotator)
    text = str(text or "").strip()[:MAX_NOTE]
    if not text:
        raise UserError("a note needs text")
    if frame is not None:
        try:
            frame = int(frame)
        except (TypeError, ValueError):
            raise UserError("frame must be an integer") from None
    if db.scalar("SELECT 1 AS one FROM clips WHERE clip_id = ?", (clip_id,)) is None:
        raise LookupError(clip_id)
    created_at = now_iso()
    db.execute("INSERT INTO notes (clip_id, annotator, frame, text, created_at) VALUES (?, ?, ?, ?, ?)",
               (clip_id, annotator, frame, text, created_at))
    return {"clip_id": clip_id, "annotator": annotator, "frame": frame, "text": text, "created_at": created_at}


def latest_decisions(db: Database) -> list[dict]:
    """Each annotator's standing decision on each clip (what the export writes)."""
    return db.query(
        "SELECT d.clip_id, d.annotator, d.decision, d.reason, d.note, d.decided_at FROM decisions d "
        "JOIN (SELECT clip_id, annotator, MAX(id) AS id FROM decisions GROUP BY clip_id, annotator) m ON d.id = m.id "
        "ORDER BY d.clip_id, d.annotator"
    )


def agreement(db: Database, limit: int = 200) -> dict:
    """Pairwise agreement on clips two annotators both decided: raw share and Cohen's kappa."""
    by_clip: dict[str, dict[str, str]] = {}
    for row in latest_decisions(db):
        by_clip.setdefault(row["clip_id"], {})[row["annotator"]] = row["decision"]
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    disagreements = []
    for clip_id, votes in by_clip.items():
        for a, b in itertools.combinations(sorted(votes), 2):
            pairs.setdefault((a, b), []).append((votes[a], votes[b]))
        if len(set(votes.values())) > 1:
            disagreements.append({"clip_id": clip_id, "votes": votes})
    rows = []
    for (a, b), votes in sorted(pairs.items()):
        n = len(votes)
        observed = sum(x == y for x, y in votes) / n
        expected = sum((sum(x == k for x, _ in votes) / n) * (sum(y == k for _, y in votes) / n) for k in DECISIONS)
        kappa = None if expected >= 1 else (observed - expected) / (1 - expected)
        rows.append({"annotators": [a, b], "clips": n, "agreement": observed, "kappa": kappa})
    double = sum(1 for votes in by_clip.values() if len(votes) > 1)
    return {"pairs": rows, "clips_reviewed": len(by_clip), "clips_double_reviewed": double,
            "disagreements": disagreements[:limit], "disagreement_count": len(disagreements)}


def annotator_table(db: Database) -> list[dict]:
    return db.query(
        "SELECT annotator, COUNT(*) AS decisions, COUNT(DISTINCT clip_id) AS clips, "
        "SUM(CASE WHEN decision = 'accept' THEN 1 ELSE 0 END) AS accepts, "
        "SUM(CASE WHEN decision = 'reject' THEN 1 ELSE 0 END) AS rejects, "
        "SUM(CASE WHEN decision = 'flag' THEN 1 ELSE 0 END) AS flags, "
        "MIN(decided_at) AS first_at, MAX(decided_at) AS last_at FROM decisions GROUP BY annotator ORDER BY annotator"
    )


def recent_activity(db: Database, limit: int = 100) -> list[dict]:
    return db.query(
        "SELECT id, clip_id, annotator, decision, reason, note, decided_at FROM decisions ORDER BY id DESC LIMIT ?",
        (int(limit),),
    )


def queue_counts(db: Database, annotator: str | None) -> dict:
    counts = {}
    for queue in QUEUES:
        if queue == "mine" and not annotator:
            continue
        query = build_clip_query({"queue": queue}, annotator)
        where = ("WHERE " + " AND ".join(query.where)) if query.where else ""
        counts[queue] = int(db.scalar(f"SELECT COUNT(*) AS n FROM clips c {where}", query.args) or 0)
    return counts


def facets(db: Database) -> dict:
    """Values for the filter menus."""
    def values(column):
        return [r["v"] for r in db.query(f"SELECT DISTINCT {column} AS v FROM clips WHERE {column} IS NOT NULL ORDER BY v LIMIT 500")]

    return {
        "status": values("status"),
        "reason": values("reason"),
        "speed_bucket": values("speed_bucket"),
        "license": values("license"),
        "language": values("language"),
        "source": values("source_id"),
        "review_reasons": list(REJECT_REASONS),
    }


# -- annotators and tokens --------------------------------------------------------------
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_annotator(db: Database, name: str) -> str:
    """Create (or re-key) an annotator; returns the new token, shown once and stored only hashed."""
    check_annotator(name)
    token = secrets.token_urlsafe(24)
    db.execute(
        "INSERT INTO annotators (name, token_sha256, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256",
        (name, token_hash(token), now_iso()),
    )
    return token


def annotator_for_token(db: Database, token: str | None) -> str | None:
    if not token or len(token) > 200:
        return None
    row = db.query_one("SELECT name FROM annotators WHERE token_sha256 = ?", (token_hash(token),))
    return row["name"] if row else None
