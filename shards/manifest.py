"""Which curated clips go into shards: the curation manifest, new thresholds, annotators' rejections.

Input is a curation output folder (``docs/clips.md``): ``DIR/manifest.parquet`` (one
row per source and per clip) and ``DIR/clips/<clip_id>.{mp4,flac,labels.npz,json}``.
A clip is a candidate when the manifest says ``row_kind == "clip"`` and ``status ==
"kept"`` (without a manifest: every ``clips/*.json``). Each candidate is then judged
against :class:`~emoforge.shards.config.ShardsConfig`'s thresholds on its JSON
``stats`` and against the annotators' rejection list; every decision is recorded
(``selection.parquet``: ``clip_id, source_id, selected, reason``). Nothing here
decodes video or re-runs labeling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from emoforge.errors import UserError
from emoforge.shards.config import ShardsConfig
from emoforge.shards.format import check_key

CLIP_FILES = ("mp4", "flac", "labels.npz", "json")


@dataclass
class Candidate:
    clip_id: str
    source_id: str
    meta: dict
    paths: dict[str, Path]
    identities: tuple[str, ...] = ()  # face identity ids from the clip JSON / manifest (may be empty)


@dataclass
class Selection:
    selected: list[Candidate] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)  # one per considered clip: clip_id, source_id, selected, reason

    def drop(self, clip_id: str, source_id: str | None, reason: str) -> None:
        self.decisions.append({"clip_id": clip_id, "source_id": source_id, "selected": False, "reason": reason})

    def keep(self, candidate: Candidate) -> None:
        self.selected.append(candidate)
        self.decisions.append(
            {"clip_id": candidate.clip_id, "source_id": candidate.source_id, "selected": True, "reason": None}
        )


def clips_folder(curated_dir: Path) -> Path:
    curated_dir = Path(curated_dir)
    return curated_dir / "clips" if (curated_dir / "clips").is_dir() else curated_dir


def candidate_rows(curated_dir: Path) -> list[dict]:
    """``[{clip_id, source_id, identity?}]`` of kept clips: from the manifest if there is one, else the clip JSONs."""
    curated_dir = Path(curated_dir)
    if not curated_dir.is_dir():
        raise UserError(f"no curated folder at {curated_dir}")
    manifest = curated_dir / "manifest.parquet"
    if manifest.is_file():
        import pandas as pd

        try:
            table = pd.read_parquet(manifest)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise UserError(f"cannot read {manifest}: {exc}") from None
        missing = {"row_kind", "clip_id", "source_id", "status"} - set(table.columns)
        if missing:
            raise UserError(f"{manifest} lacks columns {sorted(missing)}")
        clips = table[(table["row_kind"] == "clip") & (table["status"] == "kept")]
        rows = []
        for record in clips.to_dict("records"):
            row = {"clip_id": str(record["clip_id"]), "source_id": str(record["source_id"])}
            if isinstance(record.get("identity"), str) and record["identity"]:
                row["identity"] = record["identity"]
            rows.append(row)
        return sorted(rows, key=lambda r: r["clip_id"])
    folder = clips_folder(curated_dir)
    rows = []
    for path in sorted(folder.glob("*.json")):
        stem = path.name[: -len(".json")]
        if "." in stem:  # e.g. speed_buckets.json, *.labels.json
            continue
        rows.append({"clip_id": stem, "source_id": None})
    if not rows:
        raise UserError(f"no manifest.parquet and no clip JSON in {folder}")
    return rows


def select_clips(curated_dir: Path, config: ShardsConfig) -> Selection:
    folder = clips_folder(curated_dir)
    rejected = load_rejections(config.exclude) if config.exclude else set()
    licenses = config.license_set
    selection = Selection()
    for row in candidate_rows(curated_dir):
        clip_id = row["clip_id"]
        paths = {ext: folder / f"{clip_id}.{ext}" for ext in CLIP_FILES}
        missing = [ext for ext, p in paths.items() if not p.is_file()]
        if missing:
            selection.drop(clip_id, row["source_id"], f"missing clip files: {', '.join(missing)}")
            continue
        try:
            meta = json.loads(paths["json"].read_text())
        except (OSError, ValueError) as exc:
            selection.drop(clip_id, row["source_id"], f"clip JSON unreadable: {exc}")
            continue
        source_id = str(meta.get("source_id") or row["source_id"] or "")
        if not source_id:
            selection.drop(clip_id, None, "clip has no source_id")
            continue
        try:
            check_key(clip_id)
        except UserError as exc:
            selection.drop(clip_id, source_id, str(exc))
            continue
        if clip_id in rejected:
            selection.drop(clip_id, source_id, "rejected by an annotator")
            continue
        reason = threshold_reason(meta, config, licenses)
        if reason:
            selection.drop(clip_id, source_id, reason)
            continue
        identities = _identities(meta.get("identity")) + _identities(row.get("identity"))
        selection.keep(Candidate(clip_id, source_id, meta, paths, tuple(sorted(set(identities)))))
    return selection


def _identities(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v]
    return [str(value)]


def _stat(meta: dict, name: str):
    value = meta.get("stats", {}).get(name)
    return None if value is None else float(value)


def threshold_reason(meta: dict, config: ShardsConfig, licenses: set[str] | None) -> str | None:
    """The first threshold the clip fails, as a reason; None when it passes. Missing stats fail a set limit."""
    duration_s = float(meta.get("duration_s") or meta.get("n_frames", 0) / float(meta.get("fps") or 25))
    if duration_s < config.min_duration_s:
        return f"shorter than min_duration_s={config.min_duration_s}"
    if config.max_duration_s is not None and duration_s > config.max_duration_s:
        return f"longer than max_duration_s={config.max_duration_s}"
    limits = (
        ("speech_fraction", config.min_speech_fraction, "min"),
        ("median_face_width_px", config.min_median_face_width_px, "min"),
        ("mean_abs_yaw_deg", config.max_mean_abs_yaw_deg, "max"),
        ("mean_velocity_deg_per_s", config.max_mean_velocity_deg_per_s, "max"),
    )
    for name, limit, kind in limits:
        if limit is None:
            continue
        value = _stat(meta, name)
        if value is None:
            return f"no {name} in the clip's stats"
        if (kind == "min" and value < limit) or (kind == "max" and value > limit):
            return f"{name}={value:.4g} {'below' if kind == 'min' else 'above'} {kind}_{name}={limit}"
    if licenses is not None:
        license_name = (meta.get("provenance") or {}).get("license")
        if license_name not in licenses:
            return f"licence {license_name!r} not in the allowed licences"
    return None


def load_rejections(path) -> set[str]:
    """Clip ids annotators rejected.

    ``.txt``: one clip id per line (``#`` comments). ``.json``: a list of ids, or of objects
    with ``clip_id``. ``.csv``/``.parquet``: a ``clip_id`` column; when a ``decision`` or
    ``status`` column exists only rows whose value is ``reject``/``rejected`` count.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no rejection list at {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        return {line for line in lines if line}
    if suffix == ".json":
        try:
            items = json.loads(path.read_text())
        except ValueError as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
        if not isinstance(items, list):
            raise UserError(f"{path} must hold a JSON list")
        return {str(i["clip_id"] if isinstance(i, dict) else i) for i in items}
    if suffix in (".csv", ".parquet"):
        import pandas as pd

        try:
            table = pd.read_csv(path, dtype=str) if suffix == ".csv" else pd.read_parquet(path)
        except Exception as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
        if "clip_id" not in table.columns:
            raise UserError(f"{path} has no clip_id column")
        for column in ("decision", "status"):
            if column in table.columns:
                table = table[table[column].astype(str).str.lower().isin(["reject", "rejected"])]
                break
        return set(table["clip_id"].astype(str))
    raise UserError(f"rejection list {path}: use .txt, .json, .csv or .parquet")
