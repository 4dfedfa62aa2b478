"""The work done on one source, in two parts that long-lived Ray actors run:

- :class:`Scanner` — probe, then one streaming pass that splits scenes and screens
  faces (holds a MediaPipe face detector);
- :class:`SpanWorker` — for each kept scene span: label it as read from the source
  on the 25 fps timeline (``span.SpanReader``; holds the labeler's MediaPipe graphs
  through ``label_frames``), cut into clips, filter, crop from a second decode, write.

Both return plain records (dicts of numbers and text) that the driver collects into
the manifest; media never travels through the object store. Every outcome is a
status with a reason; exceptions here are bugs, except that a span's unexpected
failure is caught and recorded so one bad video never stops a run.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from pathlib import Path

import numpy as np

from emoforge.cores import pin_to_core
from emoforge.curation.config import CurationConfig
from emoforge.files import file_sha256
from emoforge.labeling.video import VideoInfo

SPAN_FPS = 25


class Scanner:
    def __init__(self, config: CurationConfig, core: int | None = None):
        from emoforge.labeling.faces import FaceDetector

        pin_to_core(core)
        self.config = config
        self.detector = FaceDetector(min_score=0.5, full_range_every=1)

    def scan(self, source_id: str, path: str) -> dict:
        """Probe and scan one downloaded file: the source record and its kept spans."""
        from emoforge.curation.probe import probe_media
        from emoforge.curation.scan import scan_video

        started, cpu = time.perf_counter(), time.process_time()
        probe = probe_media(Path(path), self.config.probe)
        record = {"source_id": source_id, "probe": dataclasses.asdict(probe), "scenes": [], "spans": []}
        if not probe.ok:
            record.update(status="rejected", reason=probe.reason)
        else:
            result = scan_video(Path(path), probe, self.config, self.detector)
            record["scan_seconds"] = result.seconds
            record["decoded_s"] = result.decoded_s
            if not result.ok:
                record.update(status="rejected", reason=result.reason)
            else:
                record.update(status="scanned", reason=None, warning=result.reason)
                record["transitions"] = [dataclasses.asdict(t) for t in result.transitions]
                for scene in result.scenes:
                    record["scenes"].append(dataclasses.asdict(scene))
                    if scene.keep:
                        record["spans"].append(_span_for(source_id, scene))
        record["cpu_s"] = {"scan": time.process_time() - cpu}
        record["wall_s"] = {"scan": time.perf_counter() - started}
        return record


def _span_for(source_id: str, scene) -> dict:
    """A kept scene on the normalised 25 fps timeline: whole frames inside the scene."""
    start_frame = int(np.ceil(scene.start_s * SPAN_FPS - 1e-6))
    stop_frame = int(np.floor(scene.end_s * SPAN_FPS + 1e-6))
    return {
        "span_id": f"{source_id}-{start_frame:07d}-{stop_frame:07d}",
        "start_frame": start_frame,
        "stop_frame": stop_frame,
        "start_s": start_frame / SPAN_FPS,
        "end_s": stop_frame / SPAN_FPS,
        "scene_index": scene.index,
    }


class SpanWorker:
    def __init__(self, config: CurationConfig, core: int | None = None):
        from emoforge.labeling.label import LabelConfig

        pin_to_core(core)
        self.config = config
        self.label_config = LabelConfig()
        self._label_models = None  # the labeler's stateless graphs, built at the first span and kept
        self._decoders: dict = {}  # "label" / "clips" -> SourceDecoder of the source of the last span

    def _decoder(self, role: str, path: Path):
        """The open decode of ``path`` for one pass: the spans of a source come to a worker in
        order, so each pass goes on from where the last span left it (``span.SourceDecoder``)."""
        from emoforge.curation.span import SourceDecoder

        if any(decoder.source != path for decoder in self._decoders.values()):
            self._close_decoders()  # a new source: one source's decodes open at a time
        if role not in self._decoders:
            self._decoders[role] = SourceDecoder(path)
        return self._decoders[role]

    def _close_decoders(self) -> None:
        for decoder in self._decoders.values():
            decoder.close()
        self._decoders.clear()

    def process(self, source_id: str, path: str, span: dict, probe: dict, provenance: dict, out_dir: str,
                sha256: str | None = None) -> dict:
        """Label and clip one span of the file at ``path`` (whose hash is ``sha256``, when known);
        returns its clip rows (kept and rejected)."""
        cpu, wall = {}, {}
        try:
            return self._process(source_id, Path(path), span, probe, provenance, Path(out_dir), sha256, cpu, wall)
        except Exception as exc:  # one bad span never stops a run: record it with where it broke
            self._close_decoders()
            if self._label_models is not None:  # graphs left in an unknown state: built afresh for the next span
                self._label_models.close()
                self._label_models = None
            where = traceback.extract_tb(exc.__traceback__)[-1]
            reason = f"internal error in span processing: {type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"
            return {"span_id": span["span_id"], "status": "failed", "reason": reason[:500], "clips": [], "cpu_s": cpu, "wall_s": wall}

    def _process(self, source_id, path, span, probe, provenance, out_dir, sha256, cpu, wall) -> dict:
        from emoforge.curation.clips import plan_clips, write_clip
        from emoforge.curation.span import SpanReader
        from emoforge.labeling.label import LabelModels, label_frames
        from emoforge.labeling.video import DecodedFrame

        clips_cfg, filters = self.config.clips, self.config.filters
        clips_dir = out_dir / "clips"
        clips_dir.mkdir(parents=True, exist_ok=True)
        reader = SpanReader(path, span["start_s"], span["end_s"], probe["display_rotation_deg"], (probe["width"], probe["height"]),
                            fps=clips_cfg.fps, audio_rate_hz=clips_cfg.audio_rate_hz)
        with _timed("label", cpu, wall):
            audio = reader.audio()

            def frames():
                last, rgb = None, None
                for index, frame in reader.frames(decoder=self._decoder("label", path)):
                    if frame is not last:  # a repeated source frame is converted once
                        last, rgb = frame, reader.rgb(frame)
                    yield DecodedFrame(index, index / reader.fps, rgb)

            info = VideoInfo(str(path), reader.size[0], reader.size[1], float(reader.fps), True, probe.get("video_codec") or "",
                             probe.get("container") or "")
            # Labels are keyed by the span (its id holds the source's id and frames) and by what it was read from,
            # so a rerun reuses them. A span is one scene of the scan (cut and dissolve detection on every frame),
            # so its only shot start is frame 0 and the labeler's own per-frame cut check is not needed.
            source = {"source_id": source_id, "sha256": sha256 or file_sha256(path), "span_s": [span["start_s"], span["end_s"]],
                      "fps": reader.fps, "size": list(reader.size)}
            if self._label_models is None:
                self._label_models = LabelModels(self.label_config)
            labels = label_frames(frames(), info, audio, out_dir / "work" / source_id / "labels", span["span_id"], source,
                                  self.label_config, shot_starts=[0], models=self._label_models)
        if not labels.ok:
            return {"span_id": span["span_id"], "status": "rejected", "reason": f"labeling: {labels.meta.get('reason')}",
                    "clips": [], "cpu_s": cpu, "wall_s": wall}
        for stage, seconds in labels.meta.get("timing_cpu_s", {}).items():
            cpu[f"label.{stage}"] = seconds
        with _timed("clips", cpu, wall):
            plans = plan_clips(labels, source_id, span["start_frame"], clips_cfg, filters)
            rows, frames_from, next_frame = [], None, None
            for plan in plans:
                done = clips_dir / f"{plan.clip_id}.json"
                if plan.keep and not done.exists():
                    # One decode for the span's clips: a rejected window between two kept ones is decoded, not cropped
                    # (where the source's keyframes lie is not known here, so a seek might land no later).
                    if frames_from is None or next_frame > plan.start_frame:
                        frames_from = reader.frames(plan.start_frame, decoder=self._decoder("clips", path))
                    plan = write_clip(reader, frames_from, audio, labels, plan, clips_dir, clips_cfg, filters,
                                      provenance, source_id, span["start_s"])
                    next_frame = plan.stop_frame
                rows.append(_clip_row(plan, span, clips_cfg, clips_dir))
        return {"span_id": span["span_id"], "status": "ok", "reason": None, "clips": rows, "cpu_s": cpu, "wall_s": wall}


def _clip_row(plan, span: dict, clips_cfg, clips_dir: Path) -> dict:
    import json

    row = {
        "clip_id": plan.clip_id,
        "status": "kept" if plan.keep else "rejected",
        "reason": plan.reason,
        "start_s": span["start_s"] + plan.start_frame / clips_cfg.fps,
        "end_s": span["start_s"] + plan.stop_frame / clips_cfg.fps,
        "n_frames": plan.stop_frame - plan.start_frame,
        "scene_index": span["scene_index"],
        "stats": dict(plan.stats),
    }
    if plan.keep:
        document = json.loads((clips_dir / f"{plan.clip_id}.json").read_text())
        row["stats"] = document["stats"]  # a resumed clip reports what was written
        row["sha256"] = file_sha256(clips_dir / f"{plan.clip_id}.mp4")
    return row


class _timed:
    def __init__(self, name: str, cpu: dict, wall: dict):
        self.name, self.cpu, self.wall = name, cpu, wall

    def __enter__(self):
        self.c, self.w = time.process_time(), time.perf_counter()

    def __exit__(self, *exc):
        self.cpu[self.name] = self.cpu.get(self.name, 0.0) + time.process_time() - self.c
        self.wall[self.name] = self.wall.get(self.name, 0.0) + time.perf_counter() - self.w
