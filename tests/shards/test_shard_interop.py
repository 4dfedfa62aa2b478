"""Plain webdataset (no emoforge import) reads the shards; stats and the CLI describe them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from emoforge.cli import main
from emoforge.shards.stats import corpus_stats
from emoforge.shards.writer import load_index

READER = textwrap.dedent(
    """
    import io, json, sys
    import numpy as np, soundfile, av, webdataset as wds
    assert not any(name.startswith("emoforge") for name in sys.modules)
    urls = sys.argv[1:]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        meta = sample["json"]
        labels = sample["labels.npz"]
        n = meta["n_frames"]
        assert labels["box_xyxy_px"].shape == (n, 4) and labels["speed_vectors"].shape[0] == n
        audio, rate = soundfile.read(io.BytesIO(sample["flac"]))
        assert rate == 16000 and len(audio) == meta["audio_samples"]
        with av.open(io.BytesIO(sample["mp4"])) as c:
            frames = sum(1 for _ in c.decode(video=0))
        assert frames == n
        seen[sample["__key__"]] = sorted(k for k in sample if not k.startswith("__"))
    print(json.dumps(seen))
    assert not any(name.startswith("emoforge") for name in sys.modules)
    """
)


def test_plain_webdataset_reads_every_sample(built, tmp_path):
    out, _ = built
    index = load_index(out)
    script = tmp_path / "reader.py"
    script.write_text(READER)
    urls = [str(out / s["name"]) for s in index["shards"]]
    result = subprocess.run([sys.executable, str(script), *urls], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(seen) == {k for s in index["shards"] for k in s["keys"]}
    assert all(members == ["flac", "json", "labels.npz", "mp4"] for members in seen.values())


def test_stats_match_the_index(built, tmp_path, capsys):
    out, report = built
    stats = corpus_stats(out)
    assert stats["clips"] == 12
    for split, row in report.splits.items():
        assert stats["splits"][split]["clips"] == row["samples"]
        assert abs(stats["splits"][split]["hours"] - row["hours"]) < 1e-9
    everything = stats["distributions"]["all"]
    assert everything["clip_length_s"]["n"] == 12 and sum(everything["clip_length_s"]["counts"]) == 12
    assert sum(everything["speed_bucket"]["counts"]) == everything["yaw_deg"]["n"]  # frames with a velocity = with a pose
    assert sum(everything["licence"].values()) == 12
    assert main(["shards", "stats", str(out), "--out", str(tmp_path / "stats")]) == 0
    for name in ("stats.json", "yaw_deg.png", "speed_bucket.png", "licence.png", "speech_ratio.png", "face_width_px.png"):
        assert (tmp_path / "stats" / name).stat().st_size > 0
    assert "12 clips" in capsys.readouterr().out


def test_cli_build_and_bad_setting(curated, tmp_path, capsys):
    assert main(["shards", "build", str(curated), "--out", str(tmp_path / "o"), "--set", "shard_size_mb=100", "min_duration_s=0.9"]) == 0
    assert "dropped" in capsys.readouterr().out  # the clips shorter than 0.9 s
    assert main(["shards", "build", str(curated), "--out", str(tmp_path / "o"), "--set", "bogus=1"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown setting")
    assert main(["shards", "verify", str(tmp_path / "nowhere")]) == 2
    assert main(["shards", "split", str(curated), "--out", str(tmp_path / "s.parquet")]) == 0
