"""Score a curation run against generated footage's truth (``emoforge footage``).

- coverage: of the talking-head seconds (scenes a curator should keep, dissolve blends
  excluded), the fraction inside kept clips (goal ≥ 95%);
- purity: of the kept seconds, the fraction inside scenes a curator should keep (stricter
  than the goal's wording: a speaking head held at a pose beyond the filter's range counts
  against it);
- speaking-head share: of the kept seconds, the fraction inside scenes of one face that
  speaks, whatever its pose, motion or size (the goal as worded: ≥ 95% of kept seconds are
  single-face speaking heads);
- boundaries: for each kept clip edge that falls near a true transition, its distance in
  frames to where that transition leaves the picture clean (goal ≤ 2): a clip that
  starts after a transition is measured from the transition's end (a cut's frame, the
  last blended frame of a dissolve), one that ends before it from the transition's start;
- blended frames: dissolve frames (blends of two scenes) inside kept clips (goal 0);
- cuts: the scan's transitions against the true ones (precision, recall, within 2 frames).

Sources are matched to truth files by the footage file name in their URL or path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TOLERANCE_FRAMES = 2
FPS = 25.0
SINGLE_SPEAKING_KINDS = ("talking", "fast", "extreme", "small_face")  # footage scene kinds: one face, speaking


def evaluate(run_dir: Path, footage_dir: Path) -> dict:
    run_dir, footage_dir = Path(run_dir), Path(footage_dir)
    truths = {p.name.replace(".truth.json", ""): json.loads(p.read_text()) for p in footage_dir.glob("*.truth.json")}
    import pandas as pd

    # The run's own sources (its manifest), not every record the folder ever held: a rerun
    # with other URLs leaves the old records beside the new.
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    current = sorted(set(manifest.loc[manifest.row_kind == "source", "source_id"]))
    paths = [run_dir / "state" / f"{source_id}.json" for source_id in current]
    records = [json.loads(p.read_text()) for p in paths if p.exists()]
    keep_s = kept_s = kept_in_keep_s = kept_speaking_s = 0.0
    boundary_errors, cut_hits, cut_detected, cut_true = [], 0, 0, 0
    blended_in_clips = 0
    per_video = {}
    for record in records:
        stem = Path(str(record.get("location", ""))).name.split(".")[0]
        truth = truths.get(stem)
        if truth is None:
            continue
        keep_mask, grid_s = _keep_mask(truth)
        speaking_mask, _ = _keep_mask(truth, kinds=SINGLE_SPEAKING_KINDS)
        kept_mask = np.zeros_like(keep_mask)
        for clip in record.get("clips", []):
            if clip["status"] == "kept":
                kept_mask |= (grid_s >= clip["start_s"]) & (grid_s < clip["end_s"])
        step_s = grid_s[1] - grid_s[0]
        keep_s += keep_mask.sum() * step_s
        kept_s += kept_mask.sum() * step_s
        kept_in_keep_s += (kept_mask & keep_mask).sum() * step_s
        kept_speaking_s += (kept_mask & speaking_mask).sum() * step_s
        detected = record.get("transitions", [])
        blends = _transition_extents(truth)  # (start_s, end_s) of each transition; a cut has start == end
        times = np.asarray(truth["video"]["frame_times_s"])
        for cut in truth["cuts"]:
            if cut["kind"] == "dissolve":
                blended = times[cut["start_frame"] : cut["end_frame"]]
                for clip in record.get("clips", []):
                    if clip["status"] == "kept":
                        blended_in_clips += int(((blended >= clip["start_s"]) & (blended < clip["end_s"])).sum())
        cut_true += len(blends)
        cut_detected += len(detected)
        for (start_s, end_s), cut in zip(blends, truth["cuts"]):
            if cut["kind"] == "cut":  # the same frame, give or take the tolerance
                cut_hits += any(t["kind"] == "cut" and abs(t["time_s"] - start_s) <= (TOLERANCE_FRAMES + 0.5) / FPS for t in detected)
            else:  # a dissolve found where the true blend is
                cut_hits += any(t["kind"] == "dissolve" and t["start_s"] < end_s and t["end_s"] > start_s for t in detected)
        for clip in record.get("clips", []):
            if clip["status"] != "kept" or not blends:
                continue
            for edge_s, side in ((clip["start_s"], 1), (clip["end_s"], 0)):
                nearest = min(blends, key=lambda b: abs(b[side] - edge_s))
                if abs(nearest[side] - edge_s) < 1.0:
                    boundary_errors.append(abs(nearest[side] - edge_s) * FPS)
        per_video[stem] = {
            "keep_s": round(float(keep_mask.sum() * step_s), 2),
            "kept_s": round(float(kept_mask.sum() * step_s), 2),
            "kept_in_keep_s": round(float((kept_mask & keep_mask).sum() * step_s), 2),
        }
    def ratio(a, b):
        return round(float(a / b), 4) if b else None

    return {
        "videos": len(per_video),
        "talking_head_s": round(float(keep_s), 2),
        "kept_s": round(float(kept_s), 2),
        "coverage": ratio(kept_in_keep_s, keep_s),
        "purity": ratio(kept_in_keep_s, kept_s),
        "speaking_head_share": ratio(kept_speaking_s, kept_s),
        "boundary_error_frames_max": round(float(max(boundary_errors)), 2) if boundary_errors else None,
        "boundary_error_frames_mean": round(float(np.mean(boundary_errors)), 2) if boundary_errors else None,
        "boundaries_within_2_frames": round(float(np.mean(np.array(boundary_errors) <= TOLERANCE_FRAMES + 1e-6)), 4) if boundary_errors else None,
        "blended_frames_in_kept_clips": blended_in_clips,
        "cut_recall": ratio(cut_hits, cut_true),
        "cut_precision": ratio(min(cut_hits, cut_detected), cut_detected),
        "per_video": per_video,
    }


def _transition_extents(truth: dict) -> list[tuple[float, float]]:
    times = np.asarray(truth["video"]["frame_times_s"])
    extents = []
    for cut in truth["cuts"]:
        if cut["kind"] == "dissolve":
            extents.append((float(times[min(cut["start_frame"], len(times) - 1)]),
                            float(times[min(cut["end_frame"], len(times) - 1)])))
        else:  # the first frame of the new scene (later than the scene's nominal start where frames are sparse: VFR)
            time_s = float(times[min(cut["frame"], len(times) - 1)])
            extents.append((time_s, time_s))
    return extents


def _keep_mask(truth: dict, step_s: float = 0.01, kinds: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Talking-head time on a fine grid: scenes expected kept (or of ``kinds``), minus dissolve blends."""
    duration_s = truth["video"]["duration_s"]
    grid_s = np.arange(0, duration_s, step_s)
    mask = np.zeros(len(grid_s), bool)
    times = np.asarray(truth["video"]["frame_times_s"])
    for scene in truth["scenes"]:
        if (scene["kind"] in kinds) if kinds is not None else (scene["curation"]["expected"] == "keep"):
            mask |= (grid_s >= scene["start_s"]) & (grid_s < scene["end_s"])
    for cut in truth["cuts"]:
        if cut["kind"] == "dissolve":
            start = times[min(cut["start_frame"], len(times) - 1)]
            end = times[min(cut["end_frame"], len(times) - 1)]
            mask &= ~((grid_s >= start) & (grid_s < end))
    return mask, grid_s
