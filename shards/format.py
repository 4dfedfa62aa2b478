"""The shard format in one place: member names, the label arrays we depend on, names of files.

A shard is a plain POSIX tar (``docs/format.md``). Each sample is one clip; its members
are ``<key>.<member>`` with ``key = clip_id`` and are stored next to each other, the
metadata JSON last (a reader that sees the JSON has seen the whole sample).

If the labeler renames an array, this is the one file to change.
"""

from __future__ import annotations

import re

from emoforge.errors import UserError

SHARDS_FORMAT = "emoforge.shards"
SHARDS_VERSION = 1
SAMPLE_FORMAT = "emoforge.shard-sample"

# Members of every sample, in the order they are stored (JSON last: the commit marker).
VIDEO_MEMBER = "mp4"
AUDIO_MEMBER = "flac"
LABELS_MEMBER = "labels.npz"
META_MEMBER = "json"
REQUIRED_MEMBERS = (VIDEO_MEMBER, AUDIO_MEMBER, LABELS_MEMBER, META_MEMBER)

# Optional cached features a later pass (`emoforge shards features`) adds.
LATENTS_MEMBER = "latents.npy"  # (F, 4, H/8, W/8) float16, VAE latent mean x scaling factor
AUDIO_FEATURES_MEMBER = "audio.npy"  # (F, *S) float16, per video frame
OPTIONAL_MEMBERS = (LATENTS_MEMBER, AUDIO_FEATURES_MEMBER)
MEMBER_ORDER = (VIDEO_MEMBER, AUDIO_MEMBER, LABELS_MEMBER, LATENTS_MEMBER, AUDIO_FEATURES_MEMBER, META_MEMBER)

# Per-frame label arrays (docs/labels.md) that shards and the dataset read, by role.
BOX = "box_xyxy_px"  # (F, 4) float32, crop pixels, NaN where no face
POSE = "yaw_pitch_roll_deg"  # (F, 3) float32, NaN where no pose
POSE_VALID = "pose_valid"  # (F,) bool
VELOCITY = "velocity_deg_per_s"  # (F,) float32, NaN where unknown
SPEECH = "speech"  # (F,) bool
REQUIRED_LABEL_ARRAYS = (BOX, POSE, VELOCITY, SPEECH)
# Added by the shard writer from the corpus' speed buckets: (F, d) float32, NaN where velocity is.
SPEED_VECTORS = "speed_vectors"
# Arrays of the clip's labels not copied into shards by default (large, or not per frame).
EXCLUDED_LABEL_ARRAYS = ("mesh_px",)
EXCLUDED_LABEL_PREFIXES = ("det_",)  # per-detection arrays: not indexed by frame

# Files beside the shards.
INDEX_FILE = "index.json"
SAMPLES_FILE = "samples.parquet"
SPEED_BUCKETS_FILE = "speed_buckets.json"
SPLITS_FILE = "splits.parquet"
SELECTION_FILE = "selection.parquet"
SPLITS = ("train", "val", "test")
SHARD_NAME_RE = re.compile(r"^(train|val|test)-(\d{6})\.tar$")

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def shard_name(split: str, index: int) -> str:
    """Deterministic shard names: ``train-000000.tar``, in build order."""
    return f"{split}-{index:06d}.tar"


def check_key(key: str) -> str:
    """WebDataset splits a member name at the first dot of its basename: keys may not hold dots."""
    if not _KEY_RE.match(key):
        raise UserError(f"clip id {key!r} cannot be a shard key: use letters, digits, '-' and '_' only")
    return key


def split_member_name(name: str) -> tuple[str, str] | None:
    """``"abc-0000001-0000126.labels.npz" -> ("abc-0000001-0000126", "labels.npz")`` (WebDataset's rule)."""
    base, dot, member = name.partition(".")
    if not dot or "/" in name or not base:
        return None
    return base, member
