"""Helpers for the dashboards tests: a tiny curation output (docs/clips.md) whose video content *is* its labels, and servers over it.

Each playable clip shows a white square on grey that moves 6 px a frame; the clip's
``box_xyxy_px`` is exactly that square. So a screenshot tells which frame is on screen
(from the square) and where the overlay was drawn (from its green box), independently.
``vfr`` has a 0.2 s hole in its timeline: only a lookup by ``frame_time_s`` finds its
frames; frame ``k`` is not at ``k / 25`` s after the hole.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import numpy as np

SIZE = 256
SQUARE = 64
STEP_PX = 6
X0 = 20
N_FRAMES = 30
XSS_TITLE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
# Screenshots go to docs/images/ when asked for (EMOFORGE_DOC_SCREENSHOTS=1 pytest tests/dashboards),
# else to a scratch folder, so a test run leaves the checkout as it was.
IMAGES = REPO / "docs" / "images" if os.environ.get("EMOFORGE_DOC_SCREENSHOTS") else Path(tempfile.mkdtemp(prefix="dashboard-shots-"))


def square_box(frame: int) -> list[float]:
    x = X0 + STEP_PX * frame
    y = 60 + 2 * frame
    return [float(x), float(y), float(x + SQUARE), float(y + SQUARE)]


def frame_times(kind: str) -> np.ndarray:
    times = np.arange(N_FRAMES) / 25.0
    if kind == "vfr":
        times[12:] += 0.2  # a hole: frames 12.. are 5 frame-times later than k/25
    return times


def write_clip_video(path: Path, times: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"crf": "12", "bf": "0", "g": "10"}
        for frame_index, t in enumerate(times):
            image = np.full((SIZE, SIZE, 3), 60, np.uint8)
            x0, y0, x1, y1 = (int(v) for v in square_box(frame_index))
            image[y0:y1, x0:x1] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_labels(path: Path, times: np.ndarray, spike: bool = False) -> None:
    n = len(times)
    boxes = np.array([square_box(k) for k in range(n)], np.float32)
    yaw = np.linspace(-10, 10, n)
    ypr = np.stack([yaw, np.full(n, 3.0), np.full(n, -2.0)], axis=1).astype(np.float32)
    rotation = np.stack([np.eye(3)] * n)
    velocity = np.full(n, 5.0, np.float32)
    if spike:
        velocity[7] = 400.0
    mesh = np.zeros((n, 478, 2), np.float16)
    mesh[..., 0] = boxes[:, None, 0] + np.linspace(0, SQUARE, 478)[None]
    mesh[..., 1] = boxes[:, None, 1] + SQUARE / 2
    np.savez_compressed(
        path,
        frame_time_s=times.astype(np.float64),
        box_xyxy_px=boxes,
        yaw_pitch_roll_deg=ypr,
        rotation=rotation,
        pose_valid=np.ones(n, bool),
        velocity_deg_per_s=velocity,
        velocity_deg_per_frame=velocity / 25,
        velocity_raw_deg_per_frame=velocity / 25,
        speech=(np.arange(n) % 10) < 6,
        mesh_px=mesh,
    )


def write_flac(path: Path, seconds: float) -> None:
    import soundfile

    soundfile.write(str(path), np.zeros(int(16000 * seconds), np.float32), 16000, format="FLAC")


def build_data_dir(root: Path) -> dict:
    """Three playable clips, one rejected clip without media, a manifest, buckets and a summary."""
    clips = root / "clips"
    clips.mkdir(parents=True)
    specs = {
        "aaaa000000000001-0000000-0000030": ("cfr", "talk one", "src1", False),
        "aaaa000000000001-0000100-0000130": ("vfr", "talk two", "src1", False),
        "bbbb000000000002-0000000-0000030": ("cfr", XSS_TITLE, "src2", True),
    }
    rows = []
    for clip_id, (kind, title, source, spike) in specs.items():
        times = frame_times(kind)
        write_clip_video(clips / f"{clip_id}.mp4", times)
        write_labels(clips / f"{clip_id}.labels.npz", times, spike=spike)
        write_flac(clips / f"{clip_id}.flac", N_FRAMES / 25)
        stats = {"n_frames": N_FRAMES, "median_face_width_px": 64.0, "p95_abs_yaw_deg": 9.5, "p95_abs_pitch_deg": 3.0,
                 "mean_abs_yaw_deg": 5.0, "speech_fraction": 0.6, "mean_velocity_deg_per_s": 5.0}
        meta = {"clip_id": clip_id, "source_id": source, "schema_version": 1, "n_frames": N_FRAMES, "fps": 25,
                "size_px": SIZE, "duration_s": N_FRAMES / 25, "source_span_s": [0.0, N_FRAMES / 25],
                "crop_xyxy_px": [0, 0, SIZE, SIZE], "stats": stats,
                "provenance": {"title": title, "license": "CC-BY", "uploader": title}}
        (clips / f"{clip_id}.json").write_text(json.dumps(meta))
        rows.append({"row_kind": "clip", "source_id": source, "clip_id": clip_id, "status": "kept", "reason": None,
                     "n_frames": float(N_FRAMES), "prov_title": title, "prov_license": "CC-BY", "start_s": 0.0,
                     "end_s": N_FRAMES / 25, **{k: float(v) for k, v in stats.items() if k != "n_frames"}})
    rows.append({"row_kind": "clip", "source_id": "src2", "clip_id": "bbbb000000000002-0000040-0000060",
                 "status": "rejected", "reason": "too little speech", "n_frames": 20.0, "prov_title": XSS_TITLE,
                 "mean_velocity_deg_per_s": 30.0, "p95_abs_yaw_deg": 40.0})
    for source, title, duration in (("src1", "talk one", 60.0), ("src2", XSS_TITLE, 30.0)):
        rows.append({"row_kind": "source", "source_id": source, "status": "kept", "source_duration_s": duration,
                     "prov_title": title, "prov_license": "CC-BY", "n_scenes": 2.0, "n_clips": 2.0, "kept_s": 2.4,
                     "location": f"http://example.invalid/{source}.mp4"})
        rows.append({"row_kind": "scene", "source_id": source, "scene_index": 0.0, "status": "kept", "start_s": 0.0, "end_s": 10.0})
        rows.append({"row_kind": "scene", "source_id": source, "scene_index": 1.0, "status": "rejected",
                     "reason": "no face", "start_s": 10.0, "end_s": 20.0})
    rows.append({"row_kind": "source", "source_id": "src3", "status": "rejected", "reason": "download rejected: http 404"})
    import pandas as pd

    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    (root / "speed_buckets.json").write_text(json.dumps({
        "centres_deg_per_s": [2, 8, 30], "radii_deg_per_s": [2, 4, 20], "edges_deg_per_s": [0, 4, 12, 200],
        "window_m": 2, "method": "quantile", "frames_fitted": 90, "unit": "deg_per_s", "version": 1}))
    (root / "summary.json").write_text(json.dumps({
        "sources": 3, "hours_in": 0.025, "hours_kept": 0.001, "clips": 3, "wall_s": 42.0,
        "cpu_s_by_stage": {"scan": 3.0, "normalise": 4.0, "label": 9.0, "clips": 2.0}}))
    return {"clips": list(specs), "cfr": "aaaa000000000001-0000000-0000030", "vfr": "aaaa000000000001-0000100-0000130",
            "xss": "bbbb000000000002-0000000-0000030", "rejected": "bbbb000000000002-0000040-0000060"}



# -- a real server in a child process ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``emoforge dashboard`` as a user runs it; ``restart()`` stops it and starts it again on the same port."""

    def __init__(self, data_dir: Path, db_url: str | None = None, extra=()):
        self.data_dir, self.db_url, self.extra = data_dir, db_url, list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        command = [sys.executable, "-m", "emoforge", "dashboard", "--data", str(self.data_dir), "--port", str(self.port), *self.extra]
        if self.db_url:
            command += ["--db", self.db_url]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dashboard exited: {self.process.stdout.read().decode()}")
            try:
                urllib.request.urlopen(self.url + "/api/session", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dashboard did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self):
        self.stop()
        return self.start()
