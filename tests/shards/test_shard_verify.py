"""verify catches a truncated tar and a flipped byte, names the shard, and never crashes a run."""

from __future__ import annotations

import logging

import torch

from emoforge.cli import main
from emoforge.shards.dataset import ShardDataset
from emoforge.shards.sampling import SampleConfig
from emoforge.shards.verify import verify_shards
from emoforge.shards.writer import load_index


def _shards(out):
    return load_index(out)["shards"]


def test_intact_shards_verify(built):
    report = verify_shards(built[0])
    assert report.ok, report.to_dict()
    assert sum(s.samples_ok for s in report.shards) == 12


def test_truncated_tar_and_flipped_byte_are_reported_by_name(built_copy, caplog):
    out = built_copy
    entries = _shards(out)
    truncated, flipped = out / entries[0]["name"], out / entries[1]["name"]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    data = bytearray(flipped.read_bytes())
    data[1500] ^= 0x40  # inside the first member's (the mp4's) bytes
    flipped.write_bytes(bytes(data))

    report = verify_shards(out)
    assert not report.ok
    assert set(report.bad_shards) == {truncated.name, flipped.name}
    problems = {s.name: " ".join(s.problems) for s in report.shards}
    assert "size" in problems[truncated.name] and "unreadable tar" in problems[truncated.name]
    assert "SHA-256" in problems[flipped.name] and "checksum mismatch in mp4" in problems[flipped.name]
    assert sum(s.samples_ok for s in report.shards) == 10

    # A training run over the damaged shards skips both samples, counts them and goes on.
    dataset = ShardDataset(out, SampleConfig(stage=1, size_px=32), split=None, shuffle_buffer=0)
    with caplog.at_level(logging.WARNING, logger="emoforge.shards"):
        samples = list(dataset)
    assert len(samples) == 10
    assert max(int(s["stream_skipped"]) for s in samples) == 2
    assert truncated.name in caplog.text and flipped.name in caplog.text


def test_skips_are_counted_in_the_stream(built_copy):
    out = built_copy
    entries = _shards(out)
    first = out / entries[0]["name"]
    first.write_bytes(first.read_bytes()[:700])  # truncated inside the first sample
    dataset = ShardDataset(out, SampleConfig(stage=1, size_px=32), split=None, shuffle_buffer=0, shuffle_shards=False)
    samples = list(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=0))
    assert len(samples) == 11
    assert int(samples[-1]["stream_skipped"]) == 1


def test_verify_cli_exit_status(built_copy, capsys):
    assert main(["shards", "verify", str(built_copy), "--quick"]) == 0
    victim = built_copy / _shards(built_copy)[2]["name"]
    victim.write_bytes(victim.read_bytes()[:-3000])
    assert main(["shards", "verify", str(built_copy), "--quick"]) == 1
    out = capsys.readouterr().out
    assert f"BAD  {victim.name}" in out
    victim.unlink()
    assert main(["shards", "verify", str(built_copy), "--quick"]) == 1
    assert "missing file" in capsys.readouterr().out
