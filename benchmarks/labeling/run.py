"""Score `emoforge label` against generated footage whose truth is known (docs/labeling.md).

    .venv/bin/python benchmarks/labeling/run.py --footage DIR [--out DIR] [--reuse] [--set KEY=VALUE ...]
    .venv/bin/python benchmarks/labeling/run.py --generate 8 --minutes 0.5 --out DIR

``--footage`` takes a folder written by ``emoforge footage`` (``*.truth.json`` beside
each video, schema ``curation/footage/truth.schema.json``); ``--generate`` renders one
first. Labels go to ``--out``/labels (as ``emoforge label`` writes them, with the
corpus' ``speed_buckets.json``), the truth-matched per-frame table to ``frames.json``
and the scores to ``results.json``. ``--reuse`` scores existing labels made with the
same configuration instead of labelling again (timings are then the stored ones).
Measured (goals from issue 3):

- head pose error per axis (mean, p95), per scene kind (talking-head and fast-motion apart);
- rotation velocity error (deg/s) and speed-bucket agreement with truth, for several d;
- face box IoU with truth; face count right per frame;
- speech activity per-frame accuracy; speaking face picked in two-face scenes;
- throughput: frames per second per CPU core, by step, on 720p videos.

Scoring rules: truth and labels are both in displayed orientation (the truth's pixels
are displayed pixels; a label file whose displayed size differs from the truth's is
reported and not scored). Frames blended by a dissolve (``cuts[].start_frame`` to
``end_frame``) are left out of every per-frame metric but speech (the soundtrack has no
dissolve), and per-face metrics use only faces drawn at opacity 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BUCKET_COUNTS = (2, 3, 4, 6, 8, 12, 16)
TALKING_KINDS = ("talking",)  # the "talking-head scenes"; "fast" is reported apart


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--footage", help="folder with videos and their *.truth.json")
    parser.add_argument("--generate", type=int, help="render this many videos first (emoforge footage)")
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/labeling/out")
    parser.add_argument("--buckets", type=int, default=8, help="the default speed buckets d (others are swept too)")
    parser.add_argument("--reuse", action="store_true", help="score existing labels with the same configuration")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="LabelConfig override, e.g. flow_velocity=false tile_every=0 (repeatable)")
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

    from emoforge.labeling.label import label_video
    from emoforge.labeling.labels import paths_for, read_labels

    if not args.reuse:
        _warm_up(out)
    config = label_config(args.set)
    rows, shots, timing, problems = [], [], [], []
    for truth_path in truths:
        truth = json.loads(truth_path.read_text())
        video = truth_path.parent / truth["video"]["file"]
        labels = label_video(video, out / "labels", config, overwrite=not args.reuse)
        if labels.ok and not labels.arrays:  # reused: label_video returns the metadata only
            labels = read_labels(paths_for(out / "labels", labels.meta["video_id"])["json"])
        if not labels.ok:
            problems.append(f"{video.name}: rejected: {labels.meta['reason']}")
            print(problems[-1])
            continue
        size = (labels.meta["video"]["width"], labels.meta["video"]["height"])
        if size != (truth["video"]["width"], truth["video"]["height"]):
            problems.append(f"{video.name}: labelled as {size[0]}x{size[1]}, displayed size is "
                            f"{truth['video']['width']}x{truth['video']['height']}: not scored")
            print(problems[-1])
            continue
        frame_rows, shot_rows = score_video(truth, labels)
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
        print(f"{video.name}: {labels.meta['video']['n_frames']} frames labelled", flush=True)
    results = summarise(rows, shots, timing, truths, out / "labels", args.buckets)
    results["footage"] = str(footage)
    results["videos"] = len(timing)
    results["problems"] = problems
    results["config"] = _config_dict(config)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "frames.json").write_text(json.dumps(rows) + "\n")
    print(json.dumps(results, indent=1))
    return 0


def label_config(overrides: list[str]):
    """``LabelConfig`` with ``key=value`` overrides, each value parsed as its field's default's type."""
    from dataclasses import fields, replace

    from emoforge.labeling.label import LabelConfig

    config = LabelConfig()
    defaults = {f.name: getattr(config, f.name) for f in fields(config)}
    changes = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in defaults:
            raise SystemExit(f"error: no LabelConfig field {key!r}")
        default = defaults[key]
        if isinstance(default, bool):
            changes[key] = value.lower() in ("1", "true", "yes")
        elif default is None:  # focal_px (a number) or wav2vec2_dir (a path)
            try:
                changes[key] = None if value.lower() == "none" else float(value)
            except ValueError:
                changes[key] = value
        else:
            changes[key] = type(default)(value)
    return replace(config, **changes)


def _config_dict(config) -> dict:
    from dataclasses import asdict

    return asdict(config)


def _warm_up(out: Path) -> None:
    """Label a tiny video once so imports and model loads stay out of the timings."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "labeling"))
    from conftest import portrait_frames, tone_bursts, write_video

    from emoforge.labeling.label import label_video

    path = out / "warmup.mp4"
    write_video(path, portrait_frames(5, size=(160, 120)), audio=tone_bursts(0.3, on_s=((0.0, 0.2),)))
    label_video(path, out / "warmup", overwrite=True)


def _iou(a, b) -> float:
    from emoforge.labeling.faces import box_iou

    return float(box_iou(np.asarray(a), np.asarray(b))[0, 0])


def _wrap_deg(x):
    return (np.asarray(x) + 180.0) % 360.0 - 180.0


def dissolve_frames(truth: dict, n: int) -> np.ndarray:
    """``(n,)`` bool: frames blended by a dissolve."""
    blended = np.zeros(n, dtype=bool)
    for cut in truth["cuts"]:
        if cut["kind"] == "dissolve":
            blended[max(cut["start_frame"], 0) : min(cut["end_frame"], n)] = True
    return blended


def speech_truth_per_frame(truth: dict, n: int) -> np.ndarray:
    """A frame is speech when its centre time lies in a truth speech segment (the labeler's rule)."""
    times = np.asarray(truth["video"]["frame_times_s"][:n], dtype=np.float64)
    step = np.diff(times)
    centres = times + 0.5 / (1.0 / float(np.median(step)) if len(step) else truth["video"]["nominal_fps"])
    speech = np.zeros(n, dtype=bool)
    for start, end in truth["speech_segments_s"]:
        speech |= (centres >= start) & (centres < end)
    return speech


def score_video(truth: dict, labels):
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
    blended = dissolve_frames(truth, n)
    truth_count = np.zeros(n, dtype=np.int64)
    faces = {f: [] for f in range(n)}  # (track, k) of faces at full opacity
    for track in truth["tracks"]:
        for k, f in enumerate(track["frames"]):
            if f < n and track["opacity"][k] >= 1.0:
                truth_count[f] += 1
                faces[f].append((track, k))
    speech_truth = speech_truth_per_frame(truth, n)
    video_name = truth["video"]["file"]

    det_frame = a["det_frame"]
    rows = []
    for f in range(n):
        dets = np.flatnonzero(det_frame == f)
        row = {
            "video": video_name,
            "frame": f,
            "scene": int(scene_of[f]),
            "scene_kind": kinds[int(scene_of[f])],
            "dissolve": bool(blended[f]),
            "count_truth": int(truth_count[f]),
            "count_label": int(a["face_count"][f]),
            "speech_truth": bool(speech_truth[f]),
            "speech_label": bool(a["speech"][f]),
            "ious": [],
            "ious_detector": [],
        }
        for track, k in faces[f]:
            box = track["box_xyxy_px"][k]
            row["ious"].append(max([_iou(box, a["det_face_box_xyxy_px"][d]) for d in dets], default=0.0))
            row["ious_detector"].append(max([_iou(box, a["det_box_xyxy_px"][d]) for d in dets], default=0.0))
        # pose: the truth face that the dominant label box covers
        match = max(faces[f], key=lambda tk: _iou(tk[0]["box_xyxy_px"][tk[1]], a["box_xyxy_px"][f]), default=None)
        if match is not None and _iou(match[0]["box_xyxy_px"][match[1]], a["box_xyxy_px"][f]) >= 0.3:
            track, k = match
            row["truth_track"] = int(track["track_id"])
            row["truth_speaks"] = bool(track["speaks"])
            if a["pose_valid"][f]:
                truth_ypr = np.array([track["yaw_deg"][k], track["pitch_deg"][k], track["roll_deg"][k]])
                row["truth_ypr_deg"] = truth_ypr.tolist()
                row["pose_error_deg"] = _wrap_deg(a["yaw_pitch_roll_deg"][f] - truth_ypr).tolist()
                row["velocity_truth_deg_per_s"] = float(track["velocity_deg_per_s"][k])
                row["velocity_truth_deg_per_frame"] = float(track["velocity_deg_per_frame"][k])
                label_v = float(a["velocity_deg_per_s"][f])
                row["velocity_label_deg_per_s"] = label_v if np.isfinite(label_v) else None
                raw_v = float(a["velocity_raw_deg_per_frame"][f])
                row["velocity_raw_label_deg_per_frame"] = raw_v if np.isfinite(raw_v) else None
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
            if f >= n or blended[f] or speaker["opacity"][k] < 1.0 or not np.isfinite(a["box_xyxy_px"][f]).all():
                continue
            own = _iou(speaker["box_xyxy_px"][k], a["box_xyxy_px"][f])
            rival = max([_iou(t["box_xyxy_px"][j], a["box_xyxy_px"][f]) for t, j in faces[f] if t is not speaker],
                        default=0.0)
            votes += own > rival
            frames += 1
        shot_rows.append(
            {"video": video_name, "scene": scene["index"], "frames": frames,
             "speaker_frames_fraction": round(votes / frames, 4) if frames else None,
             "speaker_picked": bool(frames and votes > frames / 2)}
        )
    return rows, shot_rows


def _stats(values) -> dict:
    values = np.abs(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "mean": round(float(values.mean()), 3), "p95": round(float(np.percentile(values, 95)), 3)}


def _fraction(flags) -> float | None:
    flags = list(flags)
    return round(float(np.mean(flags)), 4) if flags else None


def corpus_true_velocities(truths: list[Path]) -> np.ndarray:
    """Every full-opacity truth face frame's velocity (deg/s) over the whole footage."""
    values = []
    for path in truths:
        truth = json.loads(path.read_text())
        blended = dissolve_frames(truth, truth["video"]["n_frames"])
        for track in truth["tracks"]:
            for k, f in enumerate(track["frames"]):
                if track["opacity"][k] >= 1.0 and not blended[f]:
                    values.append(track["velocity_deg_per_s"][k])
    return np.asarray(values, dtype=np.float64)


def bucket_agreement(truth_v: np.ndarray, label_v: np.ndarray, buckets) -> dict:
    from emoforge.labeling.speed import bucket_index

    true_bucket, label_bucket = bucket_index(truth_v, buckets), bucket_index(label_v, buckets)
    return {
        "same_bucket": round(float(np.mean(true_bucket == label_bucket)), 4),
        "within_one": round(float(np.mean(np.abs(true_bucket - label_bucket) <= 1)), 4),
    }


def summarise(rows, shots, timing, truths, labels_dir: Path, d_default: int) -> dict:
    from emoforge.labeling.corpus import shot_velocities
    from emoforge.labeling.speed import CORPUS_MIN_WIDTH_DEG_PER_S, fit_speed_buckets

    results: dict = {}
    steady = [r for r in rows if not r["dissolve"]]
    kinds = sorted({r["scene_kind"] for r in rows})

    # faces: count and box
    results["face_count_accuracy"] = {
        "all": _fraction(r["count_truth"] == r["count_label"] for r in steady),
        "frames": len(steady),
        "by_kind": {k: _fraction(r["count_truth"] == r["count_label"] for r in steady if r["scene_kind"] == k)
                    for k in kinds},
        "missed_faces_frames": sum(r["count_label"] < r["count_truth"] for r in steady),
        "extra_faces_frames": sum(r["count_label"] > r["count_truth"] for r in steady),
    }
    def _box(group):
        ious = [i for r in group for i in r["ious"]]
        det = [i for r in group for i in r["ious_detector"]]
        return {"faces": len(ious), "mean": round(float(np.mean(ious)), 4) if ious else None,
                "p5": round(float(np.percentile(ious, 5)), 4) if ious else None,
                "detector_box_mean": round(float(np.mean(det)), 4) if det else None}
    results["face_box_iou"] = {"all": _box(steady), "by_kind": {k: _box([r for r in steady if r["scene_kind"] == k])
                                                                for k in kinds}}

    # speech: every frame (the soundtrack has no dissolve)
    results["speech_accuracy"] = {
        "all": _fraction(r["speech_truth"] == r["speech_label"] for r in rows),
        "frames": len(rows),
        "missed_speech_frames": sum(r["speech_truth"] and not r["speech_label"] for r in rows),
        "false_speech_frames": sum(r["speech_label"] and not r["speech_truth"] for r in rows),
        "by_kind": {k: _fraction(r["speech_truth"] == r["speech_label"] for r in rows if r["scene_kind"] == k)
                    for k in kinds},
    }
    results["speaking_face_picked"] = {
        "shots": len(shots),
        "fraction": _fraction(s["speaker_picked"] for s in shots),
        "per_shot": shots,
    }

    # pose and velocity, per scene kind
    posed = [r for r in steady if "pose_error_deg" in r]
    with_face = [r for r in steady if r["count_truth"] > 0]
    label_fit = np.concatenate(shot_velocities(labels_dir)) if shot_velocities(labels_dir) else np.zeros(0)
    truth_fit = corpus_true_velocities(truths)
    fits = {
        "labels": {d: fit_speed_buckets(label_fit, d=d) for d in BUCKET_COUNTS if label_fit[np.isfinite(label_fit)].size > d},
        "truth": {d: fit_speed_buckets(truth_fit, d=d) for d in BUCKET_COUNTS if truth_fit.size > d},
    }
    if label_fit[np.isfinite(label_fit)].size > 8:  # what a corpus gets: up to 8, none narrower than the label error
        fits["labels"]["corpus"] = fit_speed_buckets(label_fit, d=8, min_width_deg_per_s=CORPUS_MIN_WIDTH_DEG_PER_S)
    by_kind = {}
    for kind in sorted({r["scene_kind"] for r in posed}):
        group = [r for r in posed if r["scene_kind"] == kind]
        errors = np.array([r["pose_error_deg"] for r in group])
        with_v = [r for r in group if r["velocity_label_deg_per_s"] is not None]
        truth_v = np.array([r["velocity_truth_deg_per_s"] for r in with_v])
        label_v = np.array([r["velocity_label_deg_per_s"] for r in with_v])
        raw = [r for r in group if r["velocity_raw_label_deg_per_frame"] is not None]
        raw_err = [r["velocity_raw_label_deg_per_frame"] - r["velocity_truth_deg_per_frame"] for r in raw]
        entry = {
            "frames": len(group),
            "pose_coverage": _fraction("pose_error_deg" in r for r in with_face if r["scene_kind"] == kind),
            "yaw_error_deg": _stats(errors[:, 0]),
            "pitch_error_deg": _stats(errors[:, 1]),
            "roll_error_deg": _stats(errors[:, 2]),
            "yaw_bias_deg": round(float(errors[:, 0].mean()), 3),
            "pitch_bias_deg": round(float(errors[:, 1].mean()), 3),
            "roll_bias_deg": round(float(errors[:, 2].mean()), 3),
            "velocity_error_deg_per_s": _stats(label_v - truth_v),
            "velocity_bias_deg_per_s": round(float(np.mean(label_v - truth_v)), 3) if len(with_v) else None,
            # label = slope * truth + c: below 1, the labels compress the speed (MediaPipe's landmarks do)
            "velocity_slope": round(float(np.polyfit(truth_v, label_v, 1)[0]), 3) if len(with_v) > 2 else None,
            "raw_velocity_error_deg_per_frame": _stats(raw_err),
            "truth_mean_velocity_deg_per_s": round(float(truth_v.mean()), 3) if len(truth_v) else None,
        }
        for source, fitted in fits.items():
            if d_default in fitted and len(with_v):
                entry[f"bucket_agreement_d{d_default}_{source}_fit"] = bucket_agreement(truth_v, label_v, fitted[d_default])
        if "corpus" in fits["labels"] and len(with_v):
            entry["bucket_agreement_corpus_buckets"] = bucket_agreement(truth_v, label_v, fits["labels"]["corpus"])
        by_kind[kind] = entry
    results["pose_and_velocity_by_scene_kind"] = by_kind

    with_v = [r for r in posed if r["velocity_label_deg_per_s"] is not None]
    sweep = {}
    for source, fitted in fits.items():
        sweep[source] = {}
        for d, buckets in fitted.items():
            entry = {"edges_deg_per_s": [round(e, 2) for e in buckets.edges_deg_per_s]}
            for name, kinds_in in (("talking", TALKING_KINDS), ("fast", ("fast",)), ("all", None)):
                group = [r for r in with_v if kinds_in is None or r["scene_kind"] in kinds_in]
                if group:
                    entry[name] = bucket_agreement(np.array([r["velocity_truth_deg_per_s"] for r in group]),
                                                   np.array([r["velocity_label_deg_per_s"] for r in group]), buckets)
            sweep[source][str(d)] = entry
    results["bucket_agreement_by_d"] = sweep
    results["bucket_fit_frames"] = {"labels": int(np.isfinite(label_fit).sum()), "truth": int(truth_fit.size)}

    # throughput
    per_video = []
    for t in timing:
        cpu = sum(t["cpu_s"].values())
        per_video.append({"video": t["video"], "format": t["format"], "frames": t["frames"],
                          "fps_per_core": round(t["frames"] / cpu, 2) if cpu else None,
                          "wall_fps": round(t["frames"] / sum(t["wall_s"].values()), 2)})
    hd = [t for t in timing if (t["width"], t["height"]) == (1280, 720)] or timing
    frames = sum(t["frames"] for t in hd)
    steps = sorted({k for t in hd for k in t["cpu_s"]})
    cpu = {k: sum(t["cpu_s"].get(k, 0.0) for t in hd) for k in steps}
    total = sum(cpu.values())
    results["throughput_720p"] = {
        "videos": [t["video"] for t in hd],
        "frames": frames,
        "fps_per_core": round(frames / total, 2) if total else None,
        "cpu_ms_per_frame_by_step": {k: round(1000 * v / frames, 3) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])},
        "wall_fps": round(frames / sum(sum(t["wall_s"].values()) for t in hd), 2),
    }
    results["throughput_per_video"] = per_video
    return results


if __name__ == "__main__":
    raise SystemExit(main())
