"""The curation job end to end: HTTP server on 127.0.0.1 -> yt-dlp -> local Ray -> clips + manifest,
scored against the footage truth; a resumed run after ``kill -9`` equals an uninterrupted one."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _url_list(path: Path, base_url: str, footage_dir: Path) -> Path:
    names = sorted(p.name for p in footage_dir.glob("*.mp4"))
    lines = ["# two generated videos, a dead link, a refused scheme"]
    lines += [f"{base_url}/{n}" for n in names] + [f"{base_url}/gone.mp4", "ftp://127.0.0.1/x.mp4"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _outputs(run_dir: Path) -> dict:
    """What must match between runs: clip file bytes and the manifest's rows."""
    import pandas as pd

    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((run_dir / "clips").iterdir())}
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    manifest = manifest.astype(object).where(manifest.notna(), None)  # NaN != NaN: compare missing as None
    return {"files": files, "manifest": manifest.to_dict(orient="records")}


@pytest.fixture(scope="module")
def served(footage_dir):
    from emoforge.curation.demo import serve_folder

    with serve_folder(footage_dir) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, served, footage_dir):
    """One uninterrupted run, in a subprocess as a user runs it."""
    root = tmp_path_factory.mktemp("curate")
    sources = _url_list(root / "sources.txt", served, footage_dir)
    result = subprocess.run(
        [sys.executable, "-m", "emoforge", "curate", str(sources), "--out", str(root / "run"), "--num-cpus", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run", result


def test_curation_keeps_talking_heads_and_records_every_reject(uninterrupted, footage_dir):
    import pandas as pd

    from emoforge.curation.evaluate import evaluate

    run, result = uninterrupted
    assert "curated 4 sources" in result.stderr and "Traceback" not in result.stderr
    manifest = pd.read_parquet(run / "manifest.parquet")
    sources = manifest[manifest.row_kind == "source"]
    assert len(sources) == 4
    reasons = " | ".join(sources.reason.dropna())
    assert "http 404" in reasons and "scheme 'ftp' refused" in reasons
    kept = manifest[(manifest.row_kind == "clip") & (manifest.status == "kept")]
    assert len(kept) >= 2
    for clip_id in kept.clip_id:  # every kept clip is complete; no temporary file is left
        for ext in ("mp4", "flac", "labels.npz", "json"):
            assert (run / "clips" / f"{clip_id}.{ext}").is_file()
    assert not list(run.rglob("*.partial"))
    scores = evaluate(run, footage_dir)
    assert scores["videos"] == 2
    assert scores["coverage"] >= 0.9, scores
    assert scores["purity"] >= 0.95, scores
    assert scores["blended_frames_in_kept_clips"] <= 2, scores  # no dissolve frame is kept (1-frame slack each side)
    assert scores["boundaries_within_2_frames"] >= 0.75, scores  # dissolve edges are estimated on the safe side
    summary = json.loads((run / "summary.json").read_text())
    assert summary["clips"] == len(kept) and summary["hours_in"] > 0


def test_a_rerun_does_no_work_and_changes_nothing(uninterrupted, served, footage_dir):
    from emoforge.curation.config import CurationConfig
    from emoforge.curation.pipeline import curate

    run, _ = uninterrupted
    before = _outputs(run)
    started = time.perf_counter()
    summary = curate([str(run.parent / "sources.txt")], run, CurationConfig())
    assert time.perf_counter() - started < 10  # every source finished: Ray is not even started
    assert summary["clips"] == len([f for f in before["files"] if f.endswith(".json")])
    assert _outputs(run) == before


def test_kill_minus_nine_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, uninterrupted, served, footage_dir):
    reference, _ = uninterrupted
    sources = reference.parent / "sources.txt"  # the same list (input rejects' ids derive from their place in it)
    command = [sys.executable, "-m", "emoforge", "curate", str(sources), "--out", str(tmp_path / "run"), "--num-cpus", "2"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    clips = tmp_path / "run" / "clips"
    # Kill once the first clip is written and before the last source finishes.
    while time.time() < deadline and driver.poll() is None:
        if clips.is_dir() and any(p.suffix == ".json" for p in clips.iterdir()):
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the run finished before it could be interrupted"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    state = list((tmp_path / "run" / "state").glob("*.json"))
    assert len(state) < 4  # it really was interrupted
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _outputs(tmp_path / "run") == _outputs(reference)


def test_one_cpu_cluster_does_not_starve(tmp_path, footage_dir):
    """Actor pools sized to the cluster leave room for the download tasks (it hung once)."""
    video = sorted(footage_dir.glob("*.mp4"))[0]
    command = [sys.executable, "-m", "emoforge", "curate", str(video), "--out", str(tmp_path / "run"), "--num-cpus", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["clips"] >= 1
