"""Score `emoforge label` against generated footage whose truth is known (docs/labeling.md).

    .venv/bin/python benchmarks/labeling/run.py --footage DIR [--out DIR]
    .venv/bin/python benchmarks/labeling/run.py --generate 8 --minutes 0.5 --out DIR

``--footage`` takes a folder written by ``emoforge footage`` (``*.truth.json`` beside
each video, schema ``curation/footage/truth.schema.json``); ``--generate`` renders one
first. Every label file, the truth-matched per-frame table and ``results.json`` go to
``--out``. Measured (goals from issue 3):

- head pose error per axis (mean, p95), talking-head and fast-motion scenes apart;
- rotation velocity error (deg/s) and speed-bucket agreement with truth;
- face box IoU with truth; face count right per frame;
- speech activity per-frame accuracy; speaking face picked in two-face scenes;
- throughput: frames per second per CPU core, by step, on 720p videos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--footage", help="folder with videos and their *.truth.json")
    parser.add_argument("--generate", type=int, help="render this many videos first (emoforge footage)")
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/labeling/out")
    parser.add_argument("--buckets", type=int, default=8, help="speed buckets d for the agreement score")
    parser.add_argument("--min-opacity", type=float, default=0.5, help="a face counts where its opacity is at least this")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    footage = Path(args.footage) if args.footage else out / "footage"
    if args.generate:
        from emoforge.curation.footage.generate import generate_footage

        generate_footage(footage, videos=args.generate, seed=args.seed, minutes=args.minutes, workers=1)
    truths = sorted(footage.glob("*.truth.json"))
    if not truths:
        sys.stderr.write(f"error: no *.truth.json in {footage}\n")
        return 2

    from emoforge.labeling.label import LabelConfig, label_video

    _warm_up(out)
    rows, shots, timing = [], [], []
    for truth_path in truths:
        truth = json.loads(truth_path.read_text())
        video = truth_path.parent / truth["video"]["file"]
        config = LabelConfig(focal_px=None)
        labels = label_video(video, out / "labels", config, overwrite=True)
        if not labels.ok:
            print(f"{video.name}: rejected: {labels.meta['reason']}")
            continue
        frame_rows, shot_rows = score_video(truth, labels, args.min_opacity)
        rows.extend(frame_rows)
        shots.extend(shot_rows)
        timing.append(
            {
                "video": video.name,
                "format": truth["video"]["format"],
                "width": truth["video"]["width"],
                "height": truth["video"]["height"],
                "frames": labels.meta["video"]["n_frames"],
                "cpu_s": labels.meta["timing_cpu_s"],
                "wall_s": labels.meta["timing_wall_s"],
            }
        )
        print(f"{video.name}: {labels.meta['video']['n_frames']} frames labelled")
    results = summarise(rows, shots, timing, args.buckets)
    results["footage"] = str(footage)
    results["videos"] = len(timing)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    _write_rows(out / "frames.json", rows)
    print(json.dumps(results, indent=1))
    return 0


def _warm_up(out: Path) -> None:
    """Label a tiny video once so imports and model loads stay out of the timings."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "labeling"))
    from conftest import portrait_frames, tone_bursts, write_video

    from emoforge.labeling.label import label_video

    path = out / "warmup.mp4"
    write_video(path, portrait_frames(5, size=(160, 120)), audio=tone_bursts(0.3, on_s=((0.0, 0.2),)))
    label_video(path, out / "warmup", overwrite=True)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    from emoforge.labeling.faces import box_iou

    return float(box_iou(a, b)[0, 0])


def _wrap_deg(x):
    return (np.asarray(x) + 180.0) % 360.0 - 180.0


def score_video(truth: dict, labels, min_opacity: float):
    """Per-frame rows (pose, velocity, boxes, counts, speech) and per-shot rows (speaker choice)."""
    a = labels.arrays
    n = len(a["frame_time_s"])
    n_truth = truth["video"]["n_frames"]
    if n != n_truth:
        print(f"  note: {n} frames decoded, truth has {n_truth}; scoring the first {min(n, n_truth)}")
    n = min(n, n_truth)
    scene_of = np.zeros(n, dtype=np.int64)
    for scene in truth["scenes"]:
        scene_of[scene["start_frame"] : min(scene["end_frame"], n)] = scene["index"]
    kinds = {s["index"]: s["kind"] for s in truth["scenes"]}
    transition = np.zeros(n, dtype=bool)
    for cut in truth["cuts"]:
        lo, hi = cut.get("start_frame", cut["frame"] - 1), cut.get("end_frame", cut["frame"] + 1)
        transition[max(lo, 0) : min(hi, n)] = True
    truth_count = np.zeros(n, dtype=np.int64)
    face_rows = {f: [] for f in range(n)}
    for track in truth["tracks"]:
        for k, f in enumerate(track["frames"]):
            if f < n and track["opacity"][k] >= min_opacity:
                truth_count[f] += 1
                face_rows[f].append((track, k))
    speech_truth = np.zeros(n, dtype=bool)
    centres = np.asarray(truth["video"]["frame_times_s"][:n]) + 0.5 / truth["video"]["nominal_fps"]
    for start, end in truth["speech_segments_s"]:
        speech_truth |= (centres >= start) & (centres < end)

    det_frame = a["det_frame"]
    rows = []
    for f in range(n):
        dets = np.flatnonzero(det_frame == f)
        row = {
            "video": truth["video"]["file"],
            "frame": f,
            "scene_kind": kinds[int(scene_of[f])],
            "transition": bool(transition[f]),
            "count_truth": int(truth_count[f]),
            "count_label": int(a["face_count"][f]),
            "speech_truth": bool(speech_truth[f]),
            "speech_label": bool(a["speech"][f]),
            "ious": [],
            "ious_detector": [],
        }
        for track, k in face_rows[f]:
            box = np.asarray(track["box_xyxy_px"][k])
            row["ious"].append(max([_iou(box, a["det_face_box_xyxy_px"][d]) for d in dets], default=0.0))
            row["ious_detector"].append(max([_iou(box, a["det_box_xyxy_px"][d]) for d in dets], default=0.0))
        # pose: the truth face that the dominant label box covers
        if a["pose_valid"][f]:
            best = max(face_rows[f], key=lambda tk: _iou(np.asarray(tk[0]["box_xyxy_px"][tk[1]]), a["box_xyxy_px"][f]),
                       default=None)
            if best is not None and _iou(np.asarray(best[0]["box_xyxy_px"][best[1]]), a["box_xyxy_px"][f]) >= 0.3:
                track, k = best
                truth_ypr = np.array([track["yaw_deg"][k], track["pitch_deg"][k], track["roll_deg"][k]])
                row["pose_error_deg"] = _wrap_deg(a["yaw_pitch_roll_deg"][f] - truth_ypr).tolist()
                row["velocity_truth_deg_per_s"] = float(track["velocity_deg_per_s"][k])
                label_v = float(a["velocity_deg_per_s"][f])
                row["velocity_label_deg_per_s"] = label_v if np.isfinite(label_v) else None
                raw_v = float(a["velocity_raw_deg_per_frame"][f])
                row["velocity_raw_label_deg_per_frame"] = raw_v if np.isfinite(raw_v) else None
                row["velocity_truth_deg_per_frame"] = float(track["velocity_deg_per_frame"][k])
                row["truth_track"] = int(track["track_id"])
        rows.append(row)

    shot_rows = []
    for scene in truth["scenes"]:
        if scene["kind"] != "two_faces":
            continue
        speakers = [t for t in truth["tracks"] if t["scene"] == scene["index"] and t["speaks"]]
        if len(speakers) != 1:
            continue
        speaker = speakers[0]
        votes, frames = 0, 0
        for k, f in enumerate(speaker["frames"]):
            if f >= n or transition[f] or not np.isfinite(a["box_xyxy_px"][f]).all():
                continue
            others = [t for t, _ in face_rows[f] if t is not speaker]
            own = _iou(np.asarray(speaker["box_xyxy_px"][k]), a["box_xyxy_px"][f])
            rival = max(
                [_iou(np.asarray(t["box_xyxy_px"][t["frames"].index(f)]), a["box_xyxy_px"][f]) for t in others], default=0.0
            )
            votes += own > rival
            frames += 1
        shot_rows.append(
            {"video": truth["video"]["file"], "scene": scene["index"], "frames": frames,
             "speaker_picked": bool(frames and votes > frames / 2)}
        )
    return rows, shot_rows


def _stats(values) -> dict:
    values = np.abs(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "mean": round(float(values.mean()), 3), "p95": round(float(np.percentile(values, 95)), 3)}


def summarise(rows, shots, timing, d: int) -> dict:
    from emoforge.labeling.speed import bucket_index, fit_speed_buckets

    results: dict = {}
    steady = [r for r in rows if not r["transition"]]
    counted = [r for r in steady]
    results["face_count_accuracy"] = round(float(np.mean([r["count_truth"] == r["count_label"] for r in counted])), 4)
    ious = [i for r in steady for i in r["ious"]]
    det_ious = [i for r in steady for i in r["ious_detector"]]
    results["face_box_iou"] = {"mean": round(float(np.mean(ious)), 4) if ious else None,
                               "detector_box_mean": round(float(np.mean(det_ious)), 4) if det_ious else None,
                               "faces": len(ious)}
    results["speech_accuracy"] = round(float(np.mean([r["speech_truth"] == r["speech_label"] for r in rows])), 4)
    results["speaking_face_picked"] = {
        "shots": len(shots),
        "fraction": round(float(np.mean([s["speaker_picked"] for s in shots])), 4) if shots else None,
    }
    posed = [r for r in steady if "pose_error_deg" in r]
    truth_v_all = np.array([r["velocity_truth_deg_per_s"] for r in posed])
    buckets = fit_speed_buckets(truth_v_all, d=d) if len(truth_v_all) > d else None
    by_kind = {}
    for kind in sorted({r["scene_kind"] for r in posed}):
        group = [r for r in posed if r["scene_kind"] == kind]
        errors = np.array([r["pose_error_deg"] for r in group])
        with_v = [r for r in group if r["velocity_label_deg_per_s"] is not None]
        truth_v = np.array([r["velocity_truth_deg_per_s"] for r in with_v])
        label_v = np.array([r["velocity_label_deg_per_s"] for r in with_v])
        raw_v = np.array([r["velocity_raw_label_deg_per_frame"] or np.nan for r in with_v])
        truth_vf = np.array([r["velocity_truth_deg_per_frame"] for r in with_v])
        entry = {
            "frames": len(group),
            "yaw_error_deg": _stats(errors[:, 0]),
            "pitch_error_deg": _stats(errors[:, 1]),
            "roll_error_deg": _stats(errors[:, 2]),
            "velocity_error_deg_per_s": _stats(label_v - truth_v),
            "raw_velocity_error_deg_per_frame": _stats(raw_v[np.isfinite(raw_v)] - truth_vf[np.isfinite(raw_v)]),
            "truth_mean_velocity_deg_per_s": round(float(truth_v.mean()), 3) if len(truth_v) else None,
        }
        if buckets is not None and len(with_v):
            entry["bucket_agreement"] = round(float(np.mean(bucket_index(truth_v, buckets) == bucket_index(label_v, buckets))), 4)
            entry["bucket_within_one"] = round(
                float(np.mean(np.abs(bucket_index(truth_v, buckets) - bucket_index(label_v, buckets)) <= 1)), 4)
        by_kind[kind] = entry
    results["pose_and_velocity_by_scene_kind"] = by_kind
    if buckets is not None:
        results["speed_buckets_from_truth_deg_per_s"] = [round(e, 3) for e in buckets.edges_deg_per_s]
        with_v = [r for r in posed if r["velocity_label_deg_per_s"] is not None]
        truth_v = np.array([r["velocity_truth_deg_per_s"] for r in with_v])
        label_v = np.array([r["velocity_label_deg_per_s"] for r in with_v])
        results["bucket_agreement_all"] = round(float(np.mean(bucket_index(truth_v, buckets) == bucket_index(label_v, buckets))), 4)
    hd = [t for t in timing if (t["width"], t["height"]) in ((1280, 720), (720, 1280))] or timing
    frames = sum(t["frames"] for t in hd)
    steps = sorted({k for t in hd for k in t["cpu_s"]})
    cpu = {k: sum(t["cpu_s"].get(k, 0.0) for t in hd) for k in steps}
    total = sum(cpu.values())
    results["throughput_720p"] = {
        "videos": [t["video"] for t in hd],
        "frames": frames,
        "fps_per_core": round(frames / total, 2) if total else None,
        "cpu_ms_per_frame_by_step": {k: round(1000 * v / frames, 3) for k, v in cpu.items()},
        "wall_fps": round(frames / sum(sum(t["wall_s"].values()) for t in hd), 2),
    }
    return results


def _write_rows(path: Path, rows) -> None:
    path.write_text(json.dumps(rows) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
