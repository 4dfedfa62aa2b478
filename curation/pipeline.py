"""The curation job, top to bottom (DESIGN.md §3):

    sources -> download -> probe + scan (scenes, face screening) -> per kept span, read
    from the source at 25 fps: label -> clips (filters, 512² crops) -> manifest, speed
    buckets, summary

Downloads run as Ray tasks; scanning and span work run in long-lived actor pools that
hold MediaPipe (fractional CPUs, so no pool starves another: DESIGN.md §6). Each actor
decodes from local disk, so frames never cross the object store, and every stage keeps
a bounded number of items in flight.

Resume: when a source is finished its record (``DIR/state/<source_id>.json``) is written
atomically; a rerun skips finished sources, retries failed ones, and reuses finished
spans, labels and clips (their names derive from content and position). The manifest
is rebuilt from the records, so nothing is duplicated or lost.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import Counter, deque
from pathlib import Path

from emoforge.cores import cores_for_workers
from emoforge.curation.config import CurationConfig
from emoforge.files import write_json_atomic

FINAL_STATUSES = ("kept", "rejected")  # "failed" sources are retried by the next run


def curate(items: list[str], out_dir: Path, config: CurationConfig, progress_stream=sys.stderr) -> dict:
    """Run the job on ``items`` (URLs, URL-list files, files, folders); returns the summary."""
    from emoforge.curation.sources import expand_sources

    out_dir = Path(out_dir).resolve()  # Ray workers and download children run elsewhere
    state_dir = out_dir / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_run(out_dir)  # held until this process ends; one run per output folder
    _remove_stale_partials(out_dir)
    write_json_atomic(out_dir / "config.json", config.to_dict(), indent=1)
    started = time.perf_counter()

    sources, rejected = expand_sources(items)
    input_rejects = [dataclasses.asdict(r) for r in rejected]
    records = {s.source_id: _read_record(state_dir / f"{s.source_id}.json") for s in sources}
    todo = [s for s in sources if (records[s.source_id] or {}).get("status") not in FINAL_STATUSES]
    progress = _Progress(len(sources), len(sources) - len(todo), progress_stream)
    if todo:
        for record in _run_on_ray(todo, out_dir, config, progress):
            write_json_atomic(state_dir / f"{record['source_id']}.json", record, indent=1, default=str)
            records[record["source_id"]] = record
    progress.close()
    finished = [r for r in records.values() if r is not None]
    summary = _finish(out_dir, finished, input_rejects, time.perf_counter() - started)
    lock.close()
    return summary


def _lock_run(out_dir: Path):
    import fcntl

    from emoforge.errors import UserError

    handle = open(out_dir / ".curate.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"another emoforge curate is running on {out_dir}") from None
    return handle


def _remove_stale_partials(out_dir: Path) -> None:
    """Temporary files of a run that was killed (``*.partial``); downloads/ keeps its own."""
    for path in out_dir.rglob("*.partial"):
        if "downloads" not in path.relative_to(out_dir).parts:
            path.unlink(missing_ok=True)


def _run_on_ray(sources, out_dir: Path, config: CurationConfig, progress):
    """Yields each source's finished record as soon as it is complete."""
    import ray

    from emoforge.curation.process import Scanner, SpanWorker

    _start_ray(config)
    ray_config = config.ray
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    scan_actors = ray_config.scan_actors or max(1, cpus // 2)
    span_actors = ray_config.label_actors or max(1, cpus)
    # Actors never take every CPU together (a pool that does starves everything else and
    # hangs, DESIGN.md §6); downloads wait on the network, reserve no CPU, and the driver
    # bounds how many run at once.
    actor_cpus = min(ray_config.actor_num_cpus, 0.9 * cpus / (scan_actors + span_actors))
    scanner_cls = ray.remote(num_cpus=actor_cpus, max_restarts=2)(Scanner)
    worker_cls = ray.remote(num_cpus=actor_cpus, max_restarts=2)(SpanWorker)
    cores = _actor_cores(ray_config, cpus, span_actors + scan_actors)  # the span workers first: the heavier
    workers = _Pool([worker_cls.remote(config, cores[i]) for i in range(span_actors)], ray_config.max_in_flight)
    scanners = _Pool([scanner_cls.remote(config, cores[span_actors + i]) for i in range(scan_actors)],
                     ray_config.max_in_flight)
    fetch = ray.remote(num_cpus=0, max_retries=1)(_fetch)

    downloads_dir = out_dir / "downloads"
    waiting = deque(sources)
    pending: dict = {}  # ObjectRef -> (kind, source_id, payload)
    records: dict[str, dict] = {}
    open_spans: dict[str, int] = {}
    spans_waiting: deque = deque()
    max_downloads = max(2, 2 * scan_actors)

    def submit_downloads():
        while waiting and sum(1 for k, *_ in pending.values() if k == "download") < max_downloads:
            source = waiting.popleft()
            records[source.source_id] = {
                "source_id": source.source_id, "origin": source.origin, "location": source.location,
                "status": "failed", "reason": "interrupted", "scenes": [], "clips": [], "span_results": [],
            }
            ref = fetch.remote(source, str(downloads_dir), config.download)
            pending[ref] = ("download", source.source_id, None)

    def submit_spans():
        while spans_waiting and workers.has_room():
            source_id, span = spans_waiting.popleft()
            record = records[source_id]
            actor, ref = workers.submit(
                lambda a: a.process.remote(source_id, record["path"], span, record["probe"], record["provenance"], str(out_dir),
                                           record.get("sha256")),
                key=source_id,
            )
            pending[ref] = ("span", source_id, (actor, span))

    scan_queue: deque = deque()

    def submit_scans():
        while scan_queue and scanners.has_room():
            source_id = scan_queue.popleft()
            actor, ref = scanners.submit(lambda a: a.scan.remote(source_id, records[source_id]["path"]))
            pending[ref] = ("scan", source_id, actor)

    submit_downloads()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        progress.tick()
        for ref in ready:
            kind, source_id, payload = pending.pop(ref)
            record = records[source_id]
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.RayTaskError) as exc:
                result = {"_error": f"{kind} worker failed: {type(exc).__name__}"}
            if kind == "download":
                progress.count("downloaded")
                if "_error" in result or result["status"] != "ok":
                    reason = result.get("_error") or f"download {result['status']}: {result['reason']}"
                    record.update(status="failed" if "_error" in result or result["status"] == "failed" else "rejected",
                                  reason=reason, provenance=result.get("provenance", {}))
                    progress.reject(reason)
                    yield _done(record, progress)
                else:
                    record.update(path=result["path"], provenance=result["provenance"], sha256=result["sha256"])
                    scan_queue.append(source_id)
                submit_downloads()
            elif kind == "scan":
                scanners.release(payload)
                progress.count("scanned")
                if "_error" in result:
                    record.update(status="failed", reason=result["_error"])
                    yield _done(record, progress)
                else:
                    record.update({k: v for k, v in result.items() if k not in ("source_id",)})
                    progress.add_media(record["probe"].get("duration_s") or 0.0)
                    for scene in record["scenes"]:
                        if not scene["keep"]:
                            progress.reject(f"scene: {scene['reason']}")
                    if record["status"] == "rejected":
                        progress.reject(record["reason"])
                        yield _done(record, progress)
                    elif not record["spans"]:
                        record.update(status="rejected", reason="no scene with one usable face")
                        yield _done(record, progress)
                    else:
                        open_spans[source_id] = len(record["spans"])
                        spans_waiting.extend((source_id, span) for span in record["spans"])
            else:  # span
                actor, span = payload
                workers.release(actor)
                if "_error" in result:
                    result = {"span_id": span["span_id"], "status": "failed", "reason": result["_error"], "clips": []}
                record["span_results"].append({k: result.get(k) for k in ("span_id", "status", "reason", "cpu_s", "wall_s")})
                record["clips"].extend(result["clips"])
                for clip in result["clips"]:
                    progress.clip(clip)
                open_spans[source_id] -= 1
                if open_spans[source_id] == 0:
                    failed = [s for s in record["span_results"] if s["status"] == "failed"]
                    kept = [c for c in record["clips"] if c["status"] == "kept"]
                    if failed:
                        record.update(status="failed", reason=f"{len(failed)} span(s) failed: {failed[0]['reason']}")
                    elif kept:
                        record.update(status="kept", reason=None)
                    else:
                        record.update(status="rejected", reason="no clip passed the filters")
                    record["clips"].sort(key=lambda c: c["clip_id"])
                    record["span_results"].sort(key=lambda s: s["span_id"])
                    yield _done(record, progress)
        submit_scans()
        submit_spans()


def _done(record: dict, progress) -> dict:
    progress.count("finished")
    return record


def _actor_cores(ray_config, cpus: int, actors: int) -> list:
    """The core each actor binds itself to (``RayConfig.pin_cores``): round robin over the
    first ``cpus`` usable cores (``cores.cores_for_workers``: none under a CPU quota). All
    None when not pinning or when joining a cluster (its nodes are not this machine, and
    other jobs may share them)."""
    if not ray_config.pin_cores or ray_config.address:
        return [None] * actors
    return cores_for_workers(actors, cpus)


class _Pool:
    """Actors with a bounded number of calls in flight each; work goes to the least busy, or,
    for work with a ``key`` (a source), to the actor that got that key's last work while it
    has room: a span worker then goes on decoding a source where its previous span ended
    instead of seeking back to a keyframe (``span.SourceDecoder``)."""

    def __init__(self, actors: list, max_in_flight: int):
        self.load = {actor: 0 for actor in actors}
        self.max_in_flight = max(1, max_in_flight)
        self.last_key: dict = {}  # actor -> the key of its last call

    def has_room(self) -> bool:
        return min(self.load.values()) < self.max_in_flight

    def submit(self, call, key=None):
        actor = min(self.load, key=self.load.get)
        same = [a for a, k in self.last_key.items() if key is not None and k == key and self.load[a] < self.max_in_flight]
        if same:
            actor = same[0]
        self.load[actor] += 1
        self.last_key[actor] = key
        return actor, call(actor)

    def release(self, actor) -> None:
        self.load[actor] -= 1


def _fetch(source, downloads_dir: str, download_config: dict) -> dict:
    from emoforge.curation.download import DownloadConfig, Downloader

    result = Downloader(DownloadConfig(**download_config)).fetch(source, Path(downloads_dir))
    return {
        "status": result.status,
        "reason": result.reason,
        "path": str(result.path) if result.path else None,
        "provenance": result.provenance,
        "sha256": result.sha256,
    }


def _start_ray(config: CurationConfig) -> None:
    import logging

    import ray

    if ray.is_initialized():
        return
    options = dict(ignore_reinit_error=True, logging_level=logging.WARNING, log_to_driver=False)
    if config.ray.address:
        ray.init(address=config.ray.address, **options)
        return
    try:
        import ray.dashboard  # noqa: F401  (present with ray[default])

        dashboard = True
    except ImportError:
        dashboard = False
    ray.init(num_cpus=config.ray.num_cpus, include_dashboard=dashboard, dashboard_host="127.0.0.1", **options)


def _finish(out_dir: Path, records: list[dict], input_rejects: list[dict], elapsed_s: float) -> dict:
    from emoforge.curation.manifest import manifest_rows, write_manifest

    rows = manifest_rows(sorted(records, key=lambda r: r["source_id"]), input_rejects)
    write_manifest(out_dir / "manifest.parquet", rows)
    buckets = _fit_speed_buckets(out_dir, records)
    reasons = Counter()
    for row in rows:
        if row["status"] != "kept" and row.get("reason"):
            reasons[f"{row['row_kind']}: {_reason_key(row['reason'])}"] += 1
    seconds_in = sum((r.get("probe") or {}).get("duration_s") or 0.0 for r in records)
    kept_clips = [c for r in records for c in r.get("clips", []) if c["status"] == "kept"]
    seconds_kept = sum(c["n_frames"] for c in kept_clips) / 25.0
    cpu = Counter()
    for record in records:
        cpu.update(record.get("cpu_s", {}))
        for span in record.get("span_results", []):
            cpu.update({k: v for k, v in (span.get("cpu_s") or {}).items() if "." not in k})
    summary = {
        "sources": len(records) + len(input_rejects),
        "sources_kept": sum(1 for r in records if r["status"] == "kept"),
        "sources_rejected": sum(1 for r in records if r["status"] == "rejected") + len(input_rejects),
        "sources_failed": sum(1 for r in records if r["status"] == "failed"),
        "processed": sum(1 for r in records if (r.get("probe") or {}).get("ok")),
        "hours_in": seconds_in / 3600,
        "hours_kept": seconds_kept / 3600,
        "clips": len(kept_clips),
        "reject_reasons": dict(reasons.most_common()),
        "cpu_s_by_stage": {k: round(v, 2) for k, v in cpu.items()},
        "wall_s": round(elapsed_s, 2),
        "speed_buckets": buckets,
    }
    write_json_atomic(out_dir / "summary.json", summary, indent=1, default=str)
    return summary


def _reason_key(reason: str) -> str:
    """Group reasons by their stable head ("decoding stopped at 3.1 s (...)" -> "decoding stopped")."""
    for stop in (" (", " at "):
        reason = reason.split(stop)[0]
    return reason[:80]


def _fit_speed_buckets(out_dir: Path, records: list[dict]) -> str | None:
    """Fit the corpus' speed buckets on kept clips' velocities (saved with the corpus)."""
    import numpy as np

    from emoforge.labeling.speed import CORPUS_MIN_WIDTH_DEG_PER_S, fit_speed_buckets

    velocities = []
    for record in records:
        for clip in record.get("clips", []):
            if clip["status"] == "kept":
                path = out_dir / "clips" / f"{clip['clip_id']}.labels.npz"
                if path.exists():
                    with np.load(path) as arrays:
                        velocities.append(arrays["velocity_deg_per_s"])
    values = np.concatenate(velocities) if velocities else np.zeros(0)
    values = values[np.isfinite(values)]
    if len(values) < 16:
        return None
    buckets = fit_speed_buckets(values, min_width_deg_per_s=CORPUS_MIN_WIDTH_DEG_PER_S)
    buckets.save(out_dir / "speed_buckets.json")
    return "speed_buckets.json"


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class _Progress:
    """A live line on stderr: items per stage, media hours seen, kept clips, top rejects."""

    def __init__(self, total: int, already: int, stream):
        self.total, self.already, self.stream = total, already, stream
        self.counts = Counter()
        self.rejects = Counter()
        self.media_s = 0.0
        self.kept_s = 0.0
        self.started = time.perf_counter()
        self.last = 0.0
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def count(self, stage: str) -> None:
        self.counts[stage] += 1

    def add_media(self, seconds: float) -> None:
        self.media_s += seconds

    def reject(self, reason: str) -> None:
        self.rejects[_reason_key(reason)] += 1

    def clip(self, clip: dict) -> None:
        if clip["status"] == "kept":
            self.counts["clips kept"] += 1
            self.kept_s += clip["n_frames"] / 25.0
        else:
            self.counts["clips rejected"] += 1
            self.rejects[f"clip: {clip['reason']}"] += 1

    def line(self) -> str:
        top = ", ".join(f"{r} {n}" for r, n in self.rejects.most_common(3))
        return (
            f"[{time.perf_counter() - self.started:6.0f} s] sources {self.counts['finished'] + self.already}/{self.total}"
            f" | downloaded {self.counts['downloaded']} scanned {self.counts['scanned']}"
            f" | media {self.media_s / 3600:.3f} h, kept {self.kept_s / 3600:.3f} h in {self.counts['clips kept']} clips"
            + (f" | rejects: {top}" if top else "")
        )

    def tick(self) -> None:
        now = time.perf_counter()
        if now - self.last >= (1.0 if self.tty else 15.0):
            self.last = now
            self.stream.write(("\r" + self.line()) if self.tty else (self.line() + "\n"))
            self.stream.flush()

    def close(self) -> None:
        self.stream.write(("\r" if self.tty else "") + self.line() + "\n")
        self.stream.flush()
