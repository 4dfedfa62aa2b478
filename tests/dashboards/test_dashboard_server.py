"""The HTTP surface: files only from the data folder, no state change on GET, tokens off loopback, labels JSON."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
from starlette.testclient import TestClient

from emoforge.dashboards.db import Database
from emoforge.dashboards.server import Settings, create_app

POST_HEADERS = {"X-Emoforge": "1", "X-Annotator": "alice"}


@pytest.fixture
def client(data_dir):
    app = create_app(Settings(data_dir=data_dir, port=8000, index_labels=False, export_debounce_s=0.05))
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client


def decisions_in(data_dir) -> int:
    db = Database(f"sqlite:///{data_dir / 'dashboard.sqlite'}")
    try:
        return db.scalar("SELECT COUNT(*) AS n FROM decisions")
    finally:
        db.close()


TRAVERSALS = [
    "/media/..%2F..%2F..%2Fetc%2Fpasswd",
    "/media/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/media/..%252F..%252Fetc%252Fpasswd",
    "/media/%2Fetc%2Fpasswd",
    "/media/..%5C..%5Cetc%5Cpasswd.mp4",
    "/media/..%2Fmanifest.parquet",
    "/media/dashboard.sqlite",
    "/media/..%2Fdashboard.sqlite%00.mp4",
    "/media/evil.mp4",
    "/static/..%2F..%2F..%2Fpyproject.toml",
    "/static/%2e%2e%2fserver.py",
    "/static/..%252Fserver.py",
    "/api/clips/..%2F..%2Fetc%2Fpasswd/labels",
    "/api/clips/%2e%2e/labels",
]


def test_only_clip_videos_inside_the_data_folder_are_served(client, data_dir, ids):
    (data_dir / "clips" / "evil.mp4").symlink_to("/etc/passwd")
    (data_dir / "clips" / "outside-0000000-0000001.mp4").symlink_to("/etc/hostname")
    (data_dir / "clips" / "outside-0000000-0000001.labels.npz").symlink_to(data_dir / "clips" / f"{ids['cfr']}.labels.npz")
    for path in TRAVERSALS + ["/media/outside-0000000-0000001.mp4"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"root:" not in response.content and b"[build-system]" not in response.content and b"SQLite" not in response.content
    real = client.get(f"/media/{ids['cfr']}.mp4", headers={"Range": "bytes=0-99"})
    assert real.status_code == 206 and len(real.content) == 100
    # a symlink that stays inside the data folder is followed
    assert client.get("/api/clips/outside-0000000-0000001/labels").status_code == 200


def test_raw_dot_segments_never_escape(server):
    """Un-normalised ``..`` sent on the wire (clients normally clean them up) to the real server."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for path in ("/media/../../../../etc/passwd", "/static/../../../../etc/passwd", "/media/../manifest.parquet",
                 "/static/../server.py", "/media/..\\..\\etc\\passwd"):
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status in (400, 404), path
        assert b"root:" not in body and b"def create_app" not in body


def test_get_never_changes_state_and_posts_need_the_header(client, data_dir, ids):
    clip = ids["cfr"]
    for path in (f"/api/clips/{clip}/decisions", f"/api/clips/{clip}/notes", "/api/export", "/api/login", "/api/logout"):
        assert client.get(path, params={"decision": "accept"}).status_code == 405, path
    assert client.get(f"/api/clips/{clip}/decisions?decision=accept&annotator=alice").status_code == 405
    body = {"decision": "accept"}
    assert client.post(f"/api/clips/{clip}/decisions", json=body, headers={"X-Annotator": "alice"}).status_code == 403
    assert client.post(f"/api/clips/{clip}/decisions", content="decision=accept",
                       headers={**POST_HEADERS, "Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert decisions_in(data_dir) == 0
    assert not (data_dir / "decisions.parquet").exists()
    response = client.post(f"/api/clips/{clip}/decisions", json=body, headers=POST_HEADERS)
    assert response.status_code == 201 and response.json()["annotator"] == "alice"
    assert decisions_in(data_dir) == 1


def test_dns_rebinding_host_is_refused(client):
    assert client.get("/api/session", headers={"Host": "attacker.example:8000"}).status_code == 421
    assert client.get("/api/session").status_code == 200


def test_security_headers_and_escaped_metadata(client, ids, xss_title):
    page = client.get("/audit")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text.replace('<script src="/static/', "")  # no inline script at all
    listing = client.get("/api/clips", params={"q": "script"})
    assert listing.headers["content-type"].startswith("application/json")
    assert listing.json()["clips"][0]["title"] == xss_title  # kept verbatim as data; the page inserts it as text


def test_labels_json_is_the_npz(client, data_dir, ids):
    labels = client.get(f"/api/clips/{ids['vfr']}/labels").json()
    with np.load(data_dir / "clips" / f"{ids['vfr']}.labels.npz") as arrays:
        assert labels["frame_time_s"] == pytest.approx(arrays["frame_time_s"].tolist())
        assert labels["box_xyxy_px"][13] == pytest.approx(arrays["box_xyxy_px"][13].tolist())
    assert labels["frame_time_s"][12] == pytest.approx(12 / 25 + 0.2)  # the hole is kept
    assert labels["bucket_edges_deg_per_s"] == [0, 4, 12, 200] and labels["speed_bucket"][0] == 1
    mesh = client.get(f"/api/clips/{ids['vfr']}/mesh").json()["mesh_px"]
    assert len(mesh) == 30 and len(mesh[0]) == 478 * 2
    assert client.get(f"/api/clips/{ids['rejected']}/labels").status_code == 404
    detail = client.get(f"/api/clips/{ids['rejected']}").json()
    assert detail["has_media"] is False and detail["reason"] == "too little speech"


def test_tokens_are_required_off_loopback(data_dir, ids):
    from emoforge.dashboards.db import default_url
    from emoforge.dashboards.queries import add_annotator
    from emoforge.dashboards.server import open_database

    db = open_database(data_dir, None)
    token = add_annotator(db, "carol")
    db.close()
    app = create_app(Settings(data_dir=data_dir, host="0.0.0.0", port=8000, index_labels=False))
    assert app.state.dashboard.require_tokens and app.state.dashboard.db.url == default_url(data_dir)
    with TestClient(app, base_url="http://10.1.2.3:8000") as client:
        assert client.get("/api/clips").status_code == 401
        assert client.get(f"/media/{ids['cfr']}.mp4").status_code == 401
        assert client.get("/api/session").json()["tokens_required"] is True
        post = {"decision": "accept"}
        # naming yourself is not enough
        assert client.post(f"/api/clips/{ids['cfr']}/decisions", json=post, headers=POST_HEADERS).status_code == 401
        bearer = {"Authorization": f"Bearer {token}", **POST_HEADERS}
        assert client.get("/api/clips", headers=bearer).status_code == 200
        assert client.get("/api/clips", headers={"Authorization": "Bearer wrong"}).status_code == 401
        response = client.post(f"/api/clips/{ids['cfr']}/decisions", json=post, headers=bearer)
        assert response.status_code == 201 and response.json()["annotator"] == "carol"  # X-Annotator: alice ignored
        assert client.post("/api/login", json={"token": "nope"}, headers={"X-Emoforge": "1"}).status_code == 401
        login = client.post("/api/login", json={"token": token}, headers={"X-Emoforge": "1"})
        assert login.status_code == 200 and "httponly" in login.headers["set-cookie"].lower()
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        assert client.get("/api/clips").status_code == 200  # the cookie now
        assert client.get(f"/media/{ids['cfr']}.mp4").status_code == 200


def test_two_annotators_over_http_lose_nothing(server, data_dir, ids):
    """Two annotators' browsers posting at once to the real server: every decision lands."""
    barrier = threading.Barrier(2)
    failures = []

    def annotate(name):
        barrier.wait()
        for i in range(40):
            clip = ids["clips"][i % 3]
            body = json.dumps({"decision": "flag", "note": f"{name}-{i}", "request_id": f"{name}-http-{i:04d}"}).encode()
            request = urllib.request.Request(f"{server.url}/api/clips/{clip}/decisions", data=body, method="POST", headers={
                "X-Emoforge": "1", "X-Annotator": name, "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status != 201:
                        failures.append(response.status)
            except OSError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=annotate, args=(n,)) for n in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    db = Database(f"sqlite:///{data_dir / 'dashboard.sqlite'}")
    notes = {r["note"] for r in db.query("SELECT note FROM decisions")}
    db.close()
    assert notes == {f"{n}-{i}" for n in ("alice", "bob") for i in range(40)}
    server.stop()  # a clean stop writes the export
    import pandas as pd

    exported = pd.read_parquet(data_dir / "decisions.parquet")
    assert len(exported) == 6 and set(exported["annotator"]) == {"alice", "bob"}


def test_cli_adds_annotators_and_exports(data_dir, ids):
    run = [sys.executable, "-m", "emoforge", "dashboard", "--data", str(data_dir)]
    added = subprocess.run(run + ["--add-annotator", "dave"], capture_output=True, text=True, check=True)
    token = added.stdout.split("token ")[1].split()[0]
    assert len(token) >= 32
    db = Database(f"sqlite:///{data_dir / 'dashboard.sqlite'}")
    from emoforge.dashboards.queries import annotator_for_token, record_decision

    assert annotator_for_token(db, token) == "dave"
    assert token not in json.dumps(db.query("SELECT * FROM annotators"))  # stored hashed
    from emoforge.dashboards.index import sync_manifest

    sync_manifest(db, data_dir)
    record_decision(db, ids["cfr"], "dave", "reject", reason="other")
    db.close()
    exported = subprocess.run(run + ["--export"], capture_output=True, text=True, check=True)
    assert "wrote 1 decisions" in exported.stdout and (data_dir / "decisions.parquet").is_file()
    bad = subprocess.run(run[:-2] + ["--data", str(data_dir / "missing")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no data folder")
    assert os.path.exists(data_dir / "dashboard.sqlite")
