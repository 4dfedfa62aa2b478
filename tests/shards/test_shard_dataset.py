"""The streaming dataset: stage layouts, exactly-once across ranks x workers, exact resume."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from emoforge.errors import UserError
from emoforge.labeling.mask import union_mask
from emoforge.labeling.speed import SpeedBuckets, speed_embedding
from emoforge.shards.arrays import load_npz
from emoforge.shards.dataset import ShardDataset, StreamProgress
from emoforge.shards.decode import frame_rgb
from emoforge.shards.sampling import SampleConfig, SampleError, log_mel_per_frame
from emoforge.shards.tario import iter_tar_samples
from emoforge.shards.writer import load_index

STAGE2 = SampleConfig(stage=2, size_px=64, motion_frames=4, frames=12, window_m=2)


def _raw_samples(out) -> dict:
    return {raw.key: raw for s in load_index(out)["shards"] for raw in iter_tar_samples(out / s["name"])}


def _all_frames(mp4: bytes) -> np.ndarray:
    """Every frame decoded in order, converted as the dataset converts (frame_rgb)."""
    with av.open(io.BytesIO(mp4)) as container:
        return np.stack([frame_rgb(f, None) for f in container.decode(video=0)])


def test_opencv_conversion_matches_libswscale(built):
    out, _ = built
    raw = next(iter(_raw_samples(out).values()))
    with av.open(io.BytesIO(raw.members["mp4"])) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p"
        ours = frame_rgb(frame, None).astype(int)
        swscale = frame.to_ndarray(format="rgb24").astype(int)
        # Same BT.601 limited-range matrix; only chroma upsampling differs (edges of colour).
        assert np.abs(ours - swscale).mean() < 1.5 and np.percentile(np.abs(ours - swscale), 99) <= 6
        half = frame_rgb(frame, (32, 32))
        assert half.shape == (32, 32, 3) and half.dtype == np.uint8


def test_stage1_layout_and_content(built):
    out, _ = built
    raws = _raw_samples(out)
    samples = list(ShardDataset(out, SampleConfig(stage=1, size_px=64), split=None, shuffle_buffer=4))
    assert len(samples) == 12
    for sample in samples[:4]:
        assert sample["target"].shape == sample["reference"].shape == (3, 64, 64)
        assert sample["target"].dtype == torch.float32
        assert -1.0 <= float(sample["target"].min()) and float(sample["target"].max()) <= 1.0
        assert sample["face_mask"].shape == (1, 64, 64)
        target, reference = int(sample["target_index"]), int(sample["reference_index"])
        assert target != reference
        raw = raws[sample["key"]]
        frames = _all_frames(raw.members["mp4"])
        expected = torch.from_numpy(frames[target]).permute(2, 0, 1).float() / 127.5 - 1
        torch.testing.assert_close(sample["target"], expected)
        boxes = load_npz(raw.members["labels.npz"])["box_xyxy_px"]
        if np.isfinite(boxes[target]).all():
            np.testing.assert_array_equal(sample["face_mask"][0].numpy() > 0, union_mask(boxes[target : target + 1], 64, 64))


def test_stage2_layout_and_content(built):
    out, _ = built
    raws = _raw_samples(out)
    samples = list(ShardDataset(out, STAGE2, split=None, shuffle_buffer=4, output_dtype="uint8"))
    assert len(samples) == 12
    sample = samples[0]
    assert sample["frames"].shape == (3, 16, 64, 64) and sample["frames"].dtype == torch.uint8
    assert sample["reference"].shape == (3, 64, 64)
    assert sample["audio"].shape == (12, 5, 320)
    d = SpeedBuckets.load(out / "speed_buckets.json").d  # the corpus' buckets (at most 8; narrow ones merge)
    assert sample["speed"].shape == (12, 5 * d)
    assert sample["face_mask"].shape == (1, 64, 64)
    raw = raws[sample["key"]]
    meta, labels = raw.meta, load_npz(raw.members["labels.npz"])
    start = int(sample["window_start"])
    targets = np.arange(start + 4, start + 16)
    frames = _all_frames(raw.members["mp4"])
    np.testing.assert_array_equal(sample["frames"].permute(1, 2, 3, 0).numpy(), frames[start : start + 16])
    reference = int(sample["reference_index"])
    assert reference not in targets
    np.testing.assert_array_equal(sample["reference"].permute(1, 2, 0).numpy(), frames[reference])
    mel = log_mel_per_frame(raw.members["flac"], meta["n_frames"], 25)
    np.testing.assert_allclose(sample["audio"][0, 2].numpy(), mel[targets[0]])
    np.testing.assert_allclose(sample["audio"][3, 0].numpy(), mel[targets[3] - 2])
    speed = np.nan_to_num(speed_embedding(labels["speed_vectors"], 2)[targets])
    np.testing.assert_allclose(sample["speed"].numpy(), speed, rtol=1e-6)
    np.testing.assert_array_equal(sample["face_mask"][0].numpy() > 0, union_mask(labels["box_xyxy_px"][targets], 64, 64))


def _epoch_keys(out, rank: int, world: int, workers: int, epoch: int = 0, state=None) -> list[dict]:
    dataset = ShardDataset(out, SampleConfig(stage=1, size_px=32), split=None, rank=rank, world_size=world, seed=7, shuffle_buffer=3)
    dataset.set_epoch(epoch)
    if state is not None:
        dataset.load_state_dict(state)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers)
    return [
        {"key": s["key"], "slot": int(s["stream_slot"]), "position": int(s["stream_position"]), "target": int(s["target_index"])}
        for s in loader
    ]


@pytest.mark.parametrize("stage", [1, 2])
def test_worker_samples_equal_in_process_samples(built, stage):
    """Workers decode uint8 pictures into shared memory (_SharedPictures); the main process decodes into plain arrays."""
    out, _ = built
    config = SampleConfig(stage=stage, size_px=64) if stage == 1 else STAGE2
    in_process = {s["key"]: s for s in ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="uint8")}
    dataset = ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="uint8")
    pictures = ("target", "reference") if stage == 1 else ("frames", "reference")
    seen = 0
    for sample in DataLoader(dataset, batch_size=None, num_workers=2):
        expected = in_process[sample["key"]]
        for name in pictures:
            assert sample[name].is_contiguous()
            torch.testing.assert_close(sample[name], expected[name], rtol=0, atol=0)
        seen += 1
    assert seen == len(in_process) == 12


def test_keyframe_windows_start_and_reference_on_keyframes(built):
    out, _ = built
    raws = _raw_samples(out)
    config = SampleConfig(stage=2, size_px=64, motion_frames=4, frames=12, window_m=2, window_starts="keyframes")
    samples = list(ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="uint8"))
    assert len(samples) == 12
    for sample in samples:
        mp4 = raws[sample["key"]].members["mp4"]
        with av.open(io.BytesIO(mp4)) as container:
            keyframes = {int(round(float(p.pts * p.time_base) * 25)) for p in container.demux(video=0) if p.size and p.is_keyframe}
        start, reference = int(sample["window_start"]), int(sample["reference_index"])
        assert start in keyframes and reference in keyframes and not start + 4 <= reference < start + 16
        frames = _all_frames(mp4)
        np.testing.assert_array_equal(sample["frames"].permute(1, 2, 3, 0).numpy(), frames[start : start + 16])
        np.testing.assert_array_equal(sample["reference"].permute(1, 2, 0).numpy(), frames[reference])
    with pytest.raises(ValueError, match="window_starts"):
        SampleConfig(window_starts="middle")


def test_two_ranks_two_workers_see_every_sample_once(built):
    out, _ = built
    every = {k for s in load_index(out)["shards"] for k in s["keys"]}
    epochs = []
    for epoch in (0, 1):
        seen = _epoch_keys(out, 0, 2, 2, epoch) + _epoch_keys(out, 1, 2, 2, epoch)
        keys = [s["key"] for s in seen]
        assert sorted(keys) == sorted(every)  # each exactly once
        assert {s["slot"] for s in seen} == {0, 1, 2, 3}
        epochs.append(seen)
    assert [s["key"] for s in epochs[0]] != [s["key"] for s in epochs[1]]  # reshuffled per epoch
    again = _epoch_keys(out, 0, 2, 2, 0) + _epoch_keys(out, 1, 2, 2, 0)
    assert again == epochs[0]  # seeded


def test_rank_from_environment(built, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    dataset = ShardDataset(built[0], SampleConfig(stage=1, size_px=32), split=None)
    assert (dataset.rank, dataset.world_size) == (1, 3)


@pytest.mark.parametrize("consumed", [4, 5])
def test_resume_yields_the_same_next_samples(built, consumed):
    out, _ = built

    def make():
        return ShardDataset(out, SampleConfig(stage=1, size_px=32), split=None, seed=3, shuffle_buffer=4)

    dataset = make()
    dataset.set_epoch(2)
    loader = DataLoader(dataset, batch_size=1, num_workers=2)
    progress = StreamProgress(dataset, num_workers=2)
    progress.start_epoch(2)
    full = []
    for step, batch in enumerate(loader):
        if step < consumed:
            progress.update(batch)
        full.append((batch["key"][0], int(batch["stream_slot"][0]), int(batch["target_index"][0])))
    state = progress.state_dict()

    resumed_dataset = make()
    resumed_dataset.load_state_dict(state)
    assert resumed_dataset.epoch == 2
    resumed = [
        (b["key"][0], int(b["stream_slot"][0]), int(b["target_index"][0]))
        for b in DataLoader(resumed_dataset, batch_size=1, num_workers=2)
    ]
    rest = full[consumed:]
    for slot in (0, 1):  # per worker: exactly the samples, frame choices and order of the uninterrupted run
        assert [r for r in resumed if r[1] == slot] == [r for r in rest if r[1] == slot]
    if consumed % 2 == 0:  # the loader's worker interleaving is in phase: the whole order matches
        assert resumed == rest

    other = ShardDataset(out, SampleConfig(stage=1, size_px=32), split=None, seed=4, shuffle_buffer=4)
    with pytest.raises(UserError):
        other.load_state_dict(state)
    with pytest.raises(UserError):  # another number of workers cannot resume exactly
        next(iter(DataLoader(resumed_dataset, batch_size=1, num_workers=0)))


def test_state_merges_across_ranks(built):
    out, _ = built
    states = []
    for rank in (0, 1):
        dataset = ShardDataset(out, SampleConfig(stage=1, size_px=32), split=None, rank=rank, world_size=2)
        progress = StreamProgress(dataset, num_workers=1)
        progress.update(next(iter(DataLoader(dataset, batch_size=2))))
        states.append(progress.state_dict())
    merged = StreamProgress.merge(states)
    assert merged["positions"] == {"0": 2, "1": 2}


def _keyframes(mp4: bytes) -> set[int]:
    with av.open(io.BytesIO(mp4)) as container:
        return {int(round(float(p.pts * p.time_base) * 25)) for p in container.demux(video=0) if p.size and p.is_keyframe}


def test_references_are_keyframes_unless_asked_for_any_frame(built):
    out, _ = built
    raws = _raw_samples(out)
    on_keyframes, anywhere = set(), set()
    for epoch in range(3):
        for config, seen in ((STAGE2, on_keyframes), (SampleConfig(stage=2, size_px=64, reference_at="any"), anywhere)):
            dataset = ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="uint8")
            dataset.set_epoch(epoch)
            for sample in dataset:
                start, reference = int(sample["window_start"]), int(sample["reference_index"])
                assert not start + 4 <= reference < start + 16
                seen.add(reference in _keyframes(raws[sample["key"]].members["mp4"]))
    assert on_keyframes == {True}
    assert anywhere == {True, False}
    with pytest.raises(ValueError, match="reference_at"):
        SampleConfig(reference_at="middle")


@pytest.mark.parametrize("stage", [1, 2])
def test_yuv420_pictures_are_the_rgb_pictures_planes(built, stage):
    """I420 output (workers: shared memory, one block a sample) converts to exactly the RGB output."""
    import cv2

    from emoforge.shards.pixels import i420_to_unit_rgb

    out, _ = built
    config = SampleConfig(stage=stage, size_px=64) if stage == 1 else STAGE2
    rgb = {s["key"]: s for s in ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="uint8")}
    names = ("target", "reference") if stage == 1 else ("frames", "reference")
    seen = 0
    for sample in DataLoader(ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="yuv420"),
                             batch_size=None, num_workers=2):
        expected = rgb[sample["key"]]
        for name in names:
            planes = sample[name]  # ([f,] 96, 64) uint8
            assert planes.dtype == torch.uint8 and planes.shape[-2:] == (96, 64) and planes.is_contiguous()
            frames = planes.reshape(-1, 96, 64).numpy()
            converted = np.stack([cv2.cvtColor(f, cv2.COLOR_YUV2RGB_I420) for f in frames])  # (k, 64, 64, 3)
            wanted = expected[name].reshape(3, -1, 64, 64).permute(1, 2, 3, 0).numpy()  # (k, 64, 64, 3)
            np.testing.assert_array_equal(converted, wanted)
            unit = i420_to_unit_rgb(planes).reshape(-1, 3, 64, 64)  # the trainer's conversion, in float
            assert float((unit - (expected[name].reshape(3, -1, 64, 64).permute(1, 0, 2, 3).float() / 127.5 - 1)).abs().max()) <= 0.5 / 127.5 + 1e-6
        seen += 1
    assert seen == 12


def test_yuv420_pictures_resized_per_plane(built):
    out, _ = built
    config = SampleConfig(stage=2, size_px=32, motion_frames=4, frames=12, window_m=2)
    rgb = {s["key"]: s for s in ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="uint8")}
    for sample in ShardDataset(out, config, split=None, shuffle_buffer=1, output_dtype="yuv420"):
        assert sample["frames"].shape == (16, 48, 32) and sample["reference"].shape == (48, 32)
        import cv2

        converted = np.stack([cv2.cvtColor(f, cv2.COLOR_YUV2RGB_I420) for f in sample["frames"].numpy()])
        wanted = rgb[sample["key"]]["frames"].permute(1, 2, 3, 0).numpy()
        error = np.abs(converted.astype(int) - wanted)  # resized before vs after the conversion: chroma edges differ
        assert np.median(error) <= 2 and error.mean() < 4  # a swapped or misplaced plane: tens
    with pytest.raises(UserError, match="output_dtype"):
        ShardDataset(out, config, split=None, output_dtype="rgb48")


def test_log_mel_of_a_few_frames_reads_only_their_audio_and_equals_the_whole_clips(built):
    import soundfile

    from emoforge.labeling.audio import log_mel

    out, _ = built
    raw = next(iter(_raw_samples(out).values()))
    n_frames = raw.meta["n_frames"]
    samples, _ = soundfile.read(io.BytesIO(raw.members["flac"]), dtype="float32")
    whole = log_mel(samples, rows=(0, 4 * n_frames)).reshape(n_frames, 320)  # the clip's rows, all decoded
    for first, stop in ((0, 3), (5, 9), (n_frames - 4, n_frames), (0, n_frames)):
        np.testing.assert_array_equal(log_mel_per_frame(raw.members["flac"], n_frames, 25, (first, stop)), whole[first:stop])
    past_the_end = log_mel_per_frame(raw.members["flac"], n_frames + 6, 25, (n_frames, n_frames + 6))  # rows repeat the last
    np.testing.assert_array_equal(past_the_end, log_mel(samples, rows=(4 * n_frames, 4 * n_frames + 24)).reshape(6, 320))
    with pytest.raises(SampleError, match="bad_audio"):
        log_mel_per_frame(raw.members["flac"][:100], n_frames, 25, (0, 3))
