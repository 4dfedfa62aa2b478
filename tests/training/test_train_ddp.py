"""Two processes (gloo, CPU) train in sync: DDP and FSDP2 keep their parameters identical; data is split by rank."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp
from training_runs import tiny_run_config
from safetensors.torch import load_file, save_file


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world: int, port: int, config, shards, out) -> None:
    import os

    import torch.distributed as dist

    from emoforge.training.loop import Trainer

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    trainer = Trainer(config, shards, out / "run", device="cpu", say=lambda m: None)
    rows = trainer.fit()
    if config.train.fsdp:  # each rank holds shards: compare what every rank gathers
        state = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True))
    else:  # each rank holds the whole model: compare the replicas themselves
        state = trainer.model.state_dict()
    state = {k: v.detach().contiguous() for k, v in state.items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps({"rows": rows, "positions": trainer.progress.positions}))
    dist.destroy_process_group()


def _spawn(mode: str, shards, out):
    config = tiny_run_config(shards, "train.max_steps=3", "train.checkpoint_every=3", "train.grad_accumulation=2",
                             f"train.fsdp={mode == 'fsdp'}")
    mp.spawn(_rank, args=(2, _free_port(), config, shards, out), nprocs=2, join=True)
    states = [load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1)]
    logs = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return config, states, logs


@pytest.fixture(scope="module")
def ddp_run(tiny_shards, tmp_path_factory):
    return _spawn("ddp", tiny_shards, tmp_path_factory.mktemp("ddp"))


def test_two_process_gloo_ddp(ddp_run, tiny_shards):
    config, (rank0, rank1), logs = ddp_run
    torch.manual_seed(config.train.seed)
    from emoforge.training.emo import EMO

    initial = EMO(config.model).state_dict()
    assert any(not torch.equal(rank0[k], initial[k]) for k in rank0), "the ranks did not train"
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
    # Each rank read its own slot (rank r, one in-process loader: slot r); the logged loss is the ranks' mean.
    assert set(logs[0]["positions"]) == {"0"} and set(logs[1]["positions"]) == {"1"}
    assert [row["loss"] for row in logs[0]["rows"]] == [row["loss"] for row in logs[1]["rows"]]


def test_fsdp_trains_like_ddp(ddp_run, tiny_shards, tmp_path):
    """FSDP2 (sharded parameters, gradients, optimizer state and EMA) reaches DDP's weights and losses."""
    _, (ddp_weights, _), ddp_logs = ddp_run
    _, (fsdp_weights, _), fsdp_logs = _spawn("fsdp", tiny_shards, tmp_path)
    for name in ddp_weights:
        torch.testing.assert_close(fsdp_weights[name], ddp_weights[name], rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(ddp_logs[0]["rows"], fsdp_logs[0]["rows"]):
        assert abs(a["loss"] - b["loss"]) < 1e-4
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000003" / "state.json").read_text())
    assert state["world_size"] == 2 and set(state["data"]["positions"]) == {"0", "1"}
