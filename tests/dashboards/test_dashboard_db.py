"""The SQL layer on SQLite and PostgreSQL: index, decisions under concurrency, export honoured by shards."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from emoforge.dashboards import index, queries
from emoforge.dashboards.db import Database
from emoforge.dashboards.export import export_decisions


@pytest.fixture
def db(db_url, data_dir):
    database = Database(db_url)
    database.create_schema()
    index.sync_manifest(database, data_dir)
    index.sync_label_stats(database, data_dir)
    yield database
    database.close()


def test_index_holds_manifest_clips_and_label_statistics(db, ids):
    rows = {r["clip_id"]: r for r in db.query("SELECT * FROM clips")}
    assert set(rows) == set(ids["clips"]) | {ids["rejected"]}
    assert rows[ids["rejected"]]["has_media"] == 0 and rows[ids["rejected"]]["reason"] == "too little speech"
    assert rows[ids["cfr"]]["p95_abs_roll_deg"] == pytest.approx(2.0)
    assert rows[ids["cfr"]]["speed_bucket"] == 1  # mean 5 deg/s between edges 4 and 12
    # the clip with a 400 deg/s frame is the only suspicious one, and says where
    assert rows[ids["xss"]]["suspicion"] > 0 and "frame 7" in rows[ids["xss"]]["suspicion_reasons"]
    assert rows[ids["cfr"]]["suspicion"] == 0


def test_two_annotators_deciding_at_once_lose_nothing(db, ids):
    """Two writers, each with its own connection, 60 decisions each on the same clips at the same time."""
    barrier = threading.Barrier(2)
    errors = []

    def annotate(name):
        try:
            barrier.wait()
            for i in range(60):
                clip = ids["clips"][i % len(ids["clips"])]
                decision = ("accept", "reject", "flag")[i % 3]
                queries.record_decision(db, clip, name, decision, reason="wrong face box" if decision == "reject" else None,
                                        note=f"{name} {i}", request_id=f"{name}-request-{i:04d}")
        except Exception as exc:  # reported below; a lost write must fail the test, not hang it
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    rows = db.query("SELECT annotator, note FROM decisions")
    assert len(rows) == 120
    assert {r["note"] for r in rows} == {f"{n} {i}" for n in ("alice", "bob") for i in range(60)}
    # a retried request (same request_id) is stored once
    queries.record_decision(db, ids["cfr"], "alice", "accept", request_id="alice-request-0000")
    assert db.scalar("SELECT COUNT(*) AS n FROM decisions") == 120
    latest = {(r["clip_id"], r["annotator"]): r["note"] for r in queries.latest_decisions(db)}
    assert latest[(ids["clips"][0], "alice")] == "alice 57"  # i = 57 is the last i with i % 3 == 0


def test_decisions_are_validated(db, ids):
    with pytest.raises(Exception, match="reason"):
        queries.record_decision(db, ids["cfr"], "alice", "reject")
    with pytest.raises(Exception, match="decision must be"):
        queries.record_decision(db, ids["cfr"], "alice", "delete")
    with pytest.raises(Exception, match="annotator"):
        queries.record_decision(db, ids["cfr"], "alice; drop table", "accept")
    with pytest.raises(LookupError):
        queries.record_decision(db, "no-such-clip", "alice", "accept")
    assert db.scalar("SELECT COUNT(*) AS n FROM decisions") == 0


def test_agreement_and_kappa(db, ids):
    a, b, c = ids["clips"]
    for clip, alice, bob in ((a, "accept", "accept"), (b, "reject", "reject"), (c, "accept", "reject")):
        queries.record_decision(db, clip, "alice", alice, reason="other" if alice == "reject" else None)
        queries.record_decision(db, clip, "bob", bob, reason="other" if bob == "reject" else None)
    result = queries.agreement(db)
    (pair,) = result["pairs"]
    assert pair["annotators"] == ["alice", "bob"] and pair["clips"] == 3
    assert pair["agreement"] == pytest.approx(2 / 3)
    # p_e = (2/3 * 1/3) + (1/3 * 2/3) = 4/9 -> kappa = (2/3 - 4/9) / (5/9) = 0.4
    assert pair["kappa"] == pytest.approx(0.4)
    assert [d["clip_id"] for d in result["disagreements"]] == [c]
    listed = queries.list_clips(db, {"queue": "disagreements"})
    assert [r["clip_id"] for r in listed["clips"]] == [c]


def test_export_is_honoured_by_shard_selection(db, data_dir, ids):
    from emoforge.shards.config import ShardsConfig
    from emoforge.shards.manifest import load_rejections, select_clips

    # alice rejects the CFR clip, then changes her mind: her standing decision is accept
    queries.record_decision(db, ids["cfr"], "alice", "reject", reason="wrong face box")
    queries.record_decision(db, ids["cfr"], "alice", "accept")
    queries.record_decision(db, ids["vfr"], "bob", "reject", reason="wrong head pose", note="pose flips")
    queries.record_decision(db, ids["xss"], "bob", "flag", note="check")
    path, rows = export_decisions(db, data_dir)
    assert path == data_dir / "decisions.parquet" and rows == 3
    table = pd.read_parquet(path)
    assert list(table.columns) == ["clip_id", "annotator", "decision", "reason", "note", "decided_at"]
    assert str(table["decided_at"].dtype).startswith("datetime64") and not any(p.name.endswith(".partial") for p in data_dir.iterdir())
    assert load_rejections(path) == {ids["vfr"]}
    selection = select_clips(data_dir, ShardsConfig(exclude=str(path)))
    dropped = {d["clip_id"]: d["reason"] for d in selection.decisions if not d["selected"]}
    assert dropped == {ids["vfr"]: "rejected by an annotator"}
    assert {c.clip_id for c in selection.selected} == {ids["cfr"], ids["xss"]}


def test_list_filters_sort_and_queues(db, ids):
    everything = queries.list_clips(db, {})
    assert everything["total"] == 4
    assert queries.list_clips(db, {"status": "rejected"})["clips"][0]["clip_id"] == ids["rejected"]
    assert queries.list_clips(db, {"reason": "too little speech"})["total"] == 1
    assert queries.list_clips(db, {"yaw_min": "20"})["total"] == 1  # only the rejected clip has p95 |yaw| 40
    assert queries.list_clips(db, {"roll_min": "1.5", "roll_max": "2.5"})["total"] == 3
    assert queries.list_clips(db, {"q": "talk two"})["clips"][0]["clip_id"] == ids["vfr"]
    assert queries.list_clips(db, {"q": "%"})["total"] == 0  # LIKE wildcards are escaped
    by_suspicion = queries.list_clips(db, {"sort": "suspicion", "order": "desc"})["clips"]
    assert by_suspicion[0]["clip_id"] == ids["xss"] and by_suspicion[-1]["suspicion"] is None  # NULLs last
    pages = [queries.list_clips(db, {"page": p, "page_size": 3})["clips"] for p in (0, 1)]
    assert [len(p) for p in pages] == [3, 1]
    assert queries.list_clips(db, {"queue": "suspicious", "annotator": "x"}, "alice")["clips"][0]["clip_id"] == ids["xss"]
    queries.record_decision(db, ids["cfr"], "alice", "accept")
    assert queries.list_clips(db, {"queue": "unreviewed"})["total"] == 3
    assert queries.list_clips(db, {"reviewed": "yes"})["clips"][0]["reviews"][0]["annotator"] == "alice"
    assert [r["clip_id"] for r in queries.list_clips(db, {"queue": "mine"}, "alice")["clips"]] == [ids["cfr"]]
    with pytest.raises(Exception, match="sort must be"):
        queries.list_clips(db, {"sort": "clip_id; DROP TABLE clips"})
