"""The streaming dataset the trainer reads: shards -> EMO stage samples, split over nodes and workers, resumable.

``ShardDataset(shards, SampleConfig(stage=2), rank=..., world_size=...)`` is a torch
``IterableDataset``; give it to a ``DataLoader`` (any ``num_workers``). Per epoch:

1. **Shard order**: the shard list (sorted by name) is permuted by ``(seed, epoch)``,
   identically on every rank.
2. **Slots**: rank ``r``'s dataloader worker ``w`` is slot ``r * num_workers + w`` of
   ``S = world_size * num_workers``; slot ``s`` reads shards ``s, s + S, s + 2S, ...`` of
   that order. Every shard is read by exactly one slot, so every sample is seen exactly
   once per epoch across all ranks and workers (a slot may get no shard when there are
   fewer shards than slots: build with ``min_shards_per_split >= S``).
3. **Read**: complete samples in stored order (tario.py); damaged tars, incomplete
   samples and checksum mismatches are skipped, logged and counted, never raised.
4. **Shuffle**: a buffer of ``shuffle_buffer`` raw (undecoded) samples, drawn from a
   generator seeded by ``(seed, epoch, slot)``.
5. **Decode** (sampling.py): frame choices seeded by ``(seed, epoch, clip key)``; a
   sample that cannot be served (decode error, too short, no face) is skipped and
   counted.

Each yielded dict carries ``key``, ``stream_slot``, ``stream_position`` (the sample's
index in its slot's shuffled stream this epoch) and ``stream_skipped`` (samples that
slot skipped so far). :class:`StreamProgress` records them as the trainer consumes
batches.

**What resume restores.** ``dataset.load_state_dict(progress.state_dict())`` restores
the epoch and, for every slot, the position of the first sample the trainer has not
consumed. The resumed slot replays its stream without decoding up to that position
and then yields exactly the samples, frame choices and order an uninterrupted run
would have yielded next. Guaranteed when seed, shard list, world size, number of
workers, shuffle buffer and sample config are unchanged (checked: a mismatch raises
``UserError``). Not restored: the DataLoader's interleaving of workers restarts at
worker 0, so batches are the same per worker but may alternate in a different phase,
and samples that were prefetched but not consumed are produced again (not lost).
Model-side randomness (noise, timesteps) is the trainer's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from emoforge.errors import UserError
from emoforge.shards import format as fmt
from emoforge.shards.sampling import SampleConfig, SampleError, make_sample
from emoforge.shards.tario import iter_tar_samples

log = logging.getLogger("emoforge.shards")

STATE_FORMAT = "emoforge.shards.stream-state"
STATE_VERSION = 1


def shard_paths(shards, split: str | None = None) -> list[Path]:
    """A shards folder (with ``split``: that split's shards from ``index.json``), or a list of tar paths."""
    if isinstance(shards, (str, os.PathLike)) and Path(shards).is_dir():
        from emoforge.shards.writer import load_index

        folder = Path(shards)
        index = load_index(folder)
        return sorted(folder / s["name"] for s in index["shards"] if split is None or s["split"] == split)
    if isinstance(shards, (str, os.PathLike)):
        raise UserError(f"no shards folder at {shards}")
    return sorted(Path(p) for p in shards)


def distributed_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit arguments, else an initialised process group, else RANK/WORLD_SIZE, else (0, 1)."""
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _key_seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def shuffled(items, buffer_size: int, rng: np.random.Generator):
    """Reservoir-style shuffle: fill ``buffer_size`` items, then emit a random one per new item (0 or 1: in order)."""
    if buffer_size <= 1:
        yield from items
        return
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        j = int(rng.integers(len(buffer)))
        buffer[j], item = item, buffer[j]
        yield item
    while buffer:
        j = int(rng.integers(len(buffer)))
        buffer[j], buffer[-1] = buffer[-1], buffer[j]
        yield buffer.pop()


class ShardDataset(IterableDataset):
    """EMO samples streamed from shards (see the module doc for order, splitting and resume)."""

    def __init__(
        self,
        shards,
        config: SampleConfig = SampleConfig(),
        split: str | None = "train",
        rank: int | None = None,
        world_size: int | None = None,
        seed: int = 0,
        shuffle_buffer: int = 32,
        shuffle_shards: bool = True,
        check_checksums: bool = True,
        output_dtype: str = "float32",
    ):
        super().__init__()
        self.paths = shard_paths(shards, split)
        if not self.paths:
            raise UserError(f"no shards found in {shards} (split {split})")
        self.config = config
        self.rank, self.world_size = distributed_rank_world(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise UserError(f"rank {self.rank} is outside world size {self.world_size}")
        self.seed = int(seed)
        self.shuffle_buffer = int(shuffle_buffer)
        self.shuffle_shards = shuffle_shards
        self.check_checksums = check_checksums
        if output_dtype not in ("float32", "uint8", "yuv420"):
            raise UserError("output_dtype is float32 (RGB in [-1, 1]), uint8 (RGB in [0, 255]) or yuv420 (uint8 I420 planes)")
        self.output_dtype = output_dtype
        self.epoch = 0
        self._resume: dict | None = None

    # -- epoch and resume ---------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self._resume is not None and self._resume["epoch"] != self.epoch:
            self._resume = None  # a resume state applies to its own epoch only

    def fingerprint(self) -> str:
        """What must not change for an exact resume."""
        identity = {
            "shards": [p.name for p in self.paths],
            "seed": self.seed,
            "world_size": self.world_size,
            "shuffle_buffer": self.shuffle_buffer,
            "shuffle_shards": self.shuffle_shards,
            "config": asdict(self.config),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
            raise UserError("not a shard stream state (emoforge.shards.dataset.StreamProgress.state_dict())")
        if state["fingerprint"] != self.fingerprint():
            raise UserError(
                "the stream state was saved with other shards, seed, world size, shuffle buffer or sample "
                "config: an exact resume is impossible (start the epoch afresh or restore those settings)"
            )
        self.epoch = int(state["epoch"])
        self._resume = {
            "epoch": self.epoch,
            "num_workers": state["num_workers"],
            "positions": {int(k): int(v) for k, v in state["positions"].items()},
            "skipped": {int(k): int(v) for k, v in state.get("skipped", {}).items()},
        }

    # -- iteration ------------------------------------------------------------------------
    def slot(self) -> tuple[int, int]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * workers + worker, self.world_size * workers

    def slot_shards(self, slot: int, slots: int) -> list[Path]:
        order = list(self.paths)
        if self.shuffle_shards:
            permutation = np.random.default_rng([self.seed, self.epoch]).permutation(len(order))
            order = [order[i] for i in permutation]
        if len(order) < slots and slot == 0:
            log.warning("%d shards for %d rank x worker slots: %d slots get no shard", len(order), slots, slots - len(order))
        return order[slot::slots]

    def __iter__(self):
        in_worker = get_worker_info() is not None
        slot, slots = self.slot()
        workers = slots // self.world_size
        start_position, skipped = 0, 0
        if self._resume is not None and self._resume["epoch"] == self.epoch:
            if self._resume["num_workers"] != workers:
                raise UserError(
                    f"the stream state was saved with {self._resume['num_workers']} dataloader workers per rank, "
                    f"this loader has {workers}: an exact resume needs the same number"
                )
            start_position = self._resume["positions"].get(slot, 0)
            skipped = self._resume["skipped"].get(slot, 0)
        counters: dict[str, int] = {}

        # While replaying up to a resume position, skips were already counted in the restored
        # total; the replay reads exactly what the interrupted run read, so counting resumes
        # at the same point.
        replaying = start_position > 0

        def on_problem(shard: str, key: str | None, reason: str) -> None:
            nonlocal skipped
            if replaying:
                return
            skipped += 1
            counters[reason.split(":")[0]] = counters.get(reason.split(":")[0], 0) + 1
            log.warning("skipped in %s%s: %s", shard, f" ({key})" if key else "", reason)

        wanted_members = set(fmt.REQUIRED_MEMBERS) | {fmt.AUDIO_FEATURES_MEMBER}
        if self.config.use_cached_latents:
            wanted_members.add(fmt.LATENTS_MEMBER)

        def raw_samples():
            for path in self.slot_shards(slot, slots):
                yield from iter_tar_samples(
                    path, on_problem, check_checksums=self.check_checksums, select=wanted_members.__contains__
                )

        rng = np.random.default_rng([self.seed, self.epoch, slot])
        for position, raw in enumerate(shuffled(raw_samples(), self.shuffle_buffer, rng)):
            if position < start_position:
                replaying = position < start_position - 1
                continue  # consumed before the resume: replayed undecoded
            # In a worker, uint8 frames are decoded straight into shared memory: the DataLoader
            # then hands them to the training process without copying them (docs/performance.md).
            shared = _SharedPictures() if in_worker and self.output_dtype != "float32" and _SharedPictures.available() else None
            try:
                meta = raw.meta
                sample_rng = np.random.default_rng([self.seed, self.epoch, _key_seed(raw.key)])
                arrays = make_sample(raw.members, meta, self.config, sample_rng, allocate=shared if shared is not None else np.empty,
                                     pixel_format="yuv420" if self.output_dtype == "yuv420" else "rgb")
            except SampleError as exc:
                on_problem(raw.shard, raw.key, str(exc))
                continue
            except (ValueError, KeyError) as exc:
                on_problem(raw.shard, raw.key, f"bad_sample: {exc}")
                continue
            sample = self._to_tensors(arrays, shared)
            sample["key"] = raw.key
            sample["stream_slot"] = torch.tensor(slot, dtype=torch.int64)
            sample["stream_position"] = torch.tensor(position, dtype=torch.int64)
            sample["stream_skipped"] = torch.tensor(skipped, dtype=torch.int64)
            yield sample
        if counters:
            log.info("slot %d epoch %d skipped %s", slot, self.epoch, counters)

    def _to_tensors(self, arrays: dict, shared: "_SharedPictures | None" = None) -> dict:
        out = {}
        for name, value in arrays.items():
            if name in ("frames", "target", "reference"):  # (3, [n+f,] H, W) uint8 RGB, or ([n+f,] 3H/2, W) I420
                if self.output_dtype == "float32":
                    out[name] = torch.from_numpy(unit_range(value))
                else:
                    out[name] = shared.tensor(value) if shared is not None else torch.from_numpy(value)
            elif name in ("latents", "reference_latent"):
                out[name] = torch.from_numpy(np.ascontiguousarray(value))
            elif name == "face_mask":
                out[name] = torch.from_numpy(value.astype(np.float32))[None]  # (1, H, W)
            else:
                out[name] = torch.as_tensor(value)
        return out


class _SharedPictures:
    """An ``allocate(shape, dtype)`` for make_sample whose arrays live in torch shared memory.

    A tensor the DataLoader sends from a worker is copied into shared memory unless it is
    there already; decoding into it saves that copy (6-13 MB a stage-2 sample at 512²) and
    its page faults. ``tensor(array)`` gives back the tensor behind an array it made, or
    behind a contiguous view into one (a sample's frames and reference may share a block).
    """

    def __init__(self):
        self._tensors: dict[int, torch.Tensor] = {}  # data address -> the tensor made there

    @staticmethod
    def available() -> bool:
        """torch's private allocator is there (else plain arrays, which the DataLoader copies into shared memory)."""
        return hasattr(torch.UntypedStorage, "_new_shared")

    def __call__(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        if np.dtype(dtype) != np.uint8:
            raise TypeError("shared picture memory is uint8")
        count = int(np.prod(shape))
        storage = torch.UntypedStorage._new_shared(count)  # what torch's default_collate uses
        tensor = torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)
        array = tensor.numpy()
        self._tensors[array.__array_interface__["data"][0]] = tensor
        return array

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        address = array.__array_interface__["data"][0]
        for start, tensor in self._tensors.items():
            offset = address - start
            if 0 <= offset and offset + array.nbytes <= tensor.numel() and array.flags.c_contiguous:
                return tensor.view(-1)[offset: offset + array.nbytes].view(array.shape)
        raise KeyError("the array is not in shared picture memory")


def unit_range(pixels_uint8: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1] (x / 127.5 - 1) in one SIMD pass (OpenCV; torch's cast is ~6x slower)."""
    import cv2

    pixels_uint8 = np.ascontiguousarray(pixels_uint8)
    rows = pixels_uint8.reshape(-1, pixels_uint8.shape[-1])
    out = cv2.addWeighted(rows, 1 / 127.5, rows, 0.0, -1.0, dtype=cv2.CV_32F)
    np.minimum(out, 1.0, out=out)  # OpenCV's float32 scale gives 255 -> 1.0000001
    return out.reshape(pixels_uint8.shape)


class StreamProgress:
    """What the trainer has consumed, per slot; its ``state_dict()`` resumes a :class:`ShardDataset`.

    Call ``update(batch)`` on every batch the training step actually used. Under DDP,
    gather each rank's ``state_dict()`` (e.g. ``torch.distributed.all_gather_object``) and
    :meth:`merge` them before saving; every rank loads the merged state.
    """

    def __init__(self, dataset: ShardDataset, num_workers: int):
        self.fingerprint = dataset.fingerprint()
        self.epoch = dataset.epoch
        self.num_workers = max(1, int(num_workers))
        self.positions: dict[int, int] = {}
        self.skipped: dict[int, int] = {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved state (slots that yield nothing before the next save keep their position)."""
        if state["fingerprint"] != self.fingerprint:
            raise UserError("the stream state belongs to another dataset configuration")
        self.epoch, self.num_workers = int(state["epoch"]), int(state["num_workers"])
        self.positions = {int(k): int(v) for k, v in state["positions"].items()}
        self.skipped = {int(k): int(v) for k, v in state.get("skipped", {}).items()}

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.positions, self.skipped = int(epoch), {}, {}

    def update(self, batch: dict) -> None:
        slots = torch.as_tensor(batch["stream_slot"]).reshape(-1).tolist()
        positions = torch.as_tensor(batch["stream_position"]).reshape(-1).tolist()
        skipped = torch.as_tensor(batch["stream_skipped"]).reshape(-1).tolist()
        for slot, position, skip in zip(slots, positions, skipped):
            self.positions[slot] = max(self.positions.get(slot, 0), position + 1)
            self.skipped[slot] = max(self.skipped.get(slot, 0), skip)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def state_dict(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "num_workers": self.num_workers,
            "positions": {str(k): v for k, v in sorted(self.positions.items())},
            "skipped": {str(k): v for k, v in sorted(self.skipped.items())},
        }

    @staticmethod
    def merge(states: list[dict]) -> dict:
        """Union of ranks' states (their slots are disjoint)."""
        merged = dict(states[0], positions={}, skipped={})
        for state in states:
            if state["fingerprint"] != merged["fingerprint"] or state["epoch"] != merged["epoch"]:
                raise UserError("stream states from different runs or epochs cannot be merged")
            merged["positions"].update(state["positions"])
            merged["skipped"].update(state.get("skipped", {}))
        return merged
