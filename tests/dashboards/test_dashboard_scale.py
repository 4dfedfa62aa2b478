"""100k clips: every filter, sort and queue answers from indexes, with the right rows (latency in docs, not asserted)."""

from __future__ import annotations

import random
import time

import pytest

from emoforge.dashboards import queries
from emoforge.dashboards.db import Database
from emoforge.dashboards.index import MANIFEST_COLUMNS, qa_rank, upsert_clip_rows

N_CLIPS = 100_000


def synthetic_rows(n: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        clip_id = f"{i % 997:016x}-{i:07d}-{i + 125:07d}"
        kept = rng.random() < 0.8
        rows.append({
            "clip_id": clip_id, "source_id": f"{i % 997:016x}", "status": "kept" if kept else "rejected",
            "reason": None if kept else rng.choice(["too little speech", "face too small", "head pose out of range"]),
            "title": f"video {i % 997}", "license": rng.choice(["CC-BY", None]), "language": None,
            "n_frames": 125, "duration_s": 5.0, "has_media": int(kept), "speed_bucket": rng.randrange(8),
            "mean_velocity_deg_per_s": rng.uniform(0, 60), "p95_abs_yaw_deg": rng.uniform(0, 60),
            "p95_abs_pitch_deg": rng.uniform(0, 40), "median_face_width_px": rng.uniform(60, 400),
            "speech_fraction": rng.random(), "qa_rank": qa_rank(clip_id),
        })
    return rows


@pytest.fixture(scope="module")
def big_db(tmp_path_factory):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('big') / 'dashboard.sqlite'}")
    db.create_schema()
    rows = synthetic_rows(N_CLIPS)
    upsert_clip_rows(db, rows)
    rng = random.Random(1)
    suspicious = rng.sample(range(N_CLIPS), 500)
    with db.transaction() as tx:
        tx.run_many("UPDATE clips SET suspicion = ?, p95_abs_roll_deg = ? WHERE clip_id = ?",
                    [(float(k % 7 + 1), 10.0, rows[k]["clip_id"]) for k in suspicious])
        reviewed = rng.sample(range(N_CLIPS), 20_000)
        tx.run_many(
            "INSERT INTO decisions (clip_id, annotator, decision, reason, decided_at) VALUES (?, ?, ?, ?, ?)",
            [(rows[k]["clip_id"], "alice" if j % 2 else "bob", "accept", None, "2026-11-21T10:00:00.000000Z")
             for j, k in enumerate(reviewed)],
        )
    yield db, rows, set(rows[k]["clip_id"] for k in reviewed)
    db.close()


def test_pages_filters_and_queues_at_100k(big_db, capsys):
    db, rows, reviewed = big_db
    assert set(MANIFEST_COLUMNS) <= set(rows[0])
    cases = {
        "first page": {},
        "page 1000": {"page": 1000, "page_size": 50},
        "unreviewed queue": {"queue": "unreviewed"},
        "rejected by reason": {"status": "rejected", "reason": "face too small"},
        "|yaw| 30-45 by face width desc": {"yaw_min": 30, "yaw_max": 45, "sort": "face", "order": "desc"},
        "speed bucket 3, unreviewed": {"speed_bucket": 3, "reviewed": "no"},
        "suspicious queue": {"queue": "suspicious"},
        "qa sample": {"queue": "qa"},
    }
    timings = {}
    results = {}
    for name, params in cases.items():
        started = time.perf_counter()
        results[name] = queries.list_clips(db, {k: str(v) for k, v in params.items()}, "carol")
        timings[name] = (time.perf_counter() - started) * 1000
    with capsys.disabled():
        print("\n" + "\n".join(f"  {name}: {ms:.1f} ms ({results[name]['total']} rows)" for name, ms in timings.items()))

    assert results["first page"]["total"] == N_CLIPS and len(results["first page"]["clips"]) == 50
    ordered = sorted(r["clip_id"] for r in rows)
    assert [r["clip_id"] for r in results["page 1000"]["clips"]] == ordered[50_000:50_050]
    assert results["unreviewed queue"]["total"] == N_CLIPS - len(reviewed)
    assert results["rejected by reason"]["total"] == sum(1 for r in rows if r["reason"] == "face too small")
    expected = [r for r in rows if 30 <= r["p95_abs_yaw_deg"] <= 45]
    assert results["|yaw| 30-45 by face width desc"]["total"] == len(expected)
    widths = [r["median_face_width_px"] for r in results["|yaw| 30-45 by face width desc"]["clips"]]
    assert widths == sorted(widths, reverse=True) and widths[0] == max(r["median_face_width_px"] for r in expected)
    assert results["speed bucket 3, unreviewed"]["total"] == sum(
        1 for r in rows if r["speed_bucket"] == 3 and r["clip_id"] not in reviewed)
    suspicion = [r["suspicion"] for r in results["suspicious queue"]["clips"]]
    assert results["suspicious queue"]["total"] == 500 and suspicion == sorted(suspicion, reverse=True)
    qa = [r for r in rows if r["has_media"] and r["qa_rank"] < queries.QA_FRACTION]
    assert results["qa sample"]["total"] == len(qa) and 0.03 * N_CLIPS < len(qa) < 0.05 * N_CLIPS
