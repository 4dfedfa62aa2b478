"""Exponential moving average of the trainable parameters, the weights sampling uses.

θ_ema <- d θ_ema + (1 - d) θ after every optimizer step, with the usual warm-up
d_k = min(decay, (1 + k) / (10 + k)) so that early averages are not dominated by
the initialisation. Kept in float32 beside the parameters (same device, same
sharding: under FSDP each rank averages its own shards).
"""

from __future__ import annotations

import torch
from torch import nn


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (FSDP), any other tensor as it is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


class EMA:
    def __init__(self, parameters: dict[str, nn.Parameter], decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = {name: p.detach().float().clone() for name, p in parameters.items()}

    def current_decay(self) -> float:
        k = self.num_updates
        return min(self.decay, (1 + k) / (10 + k))

    @torch.no_grad()
    def update(self, parameters: dict[str, nn.Parameter]) -> None:
        decay = self.current_decay()
        for name, parameter in parameters.items():
            self.shadow[name].lerp_(parameter.detach().float(), 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def swap_into(self, parameters: dict[str, nn.Parameter]) -> None:
        """Exchange the parameters' values with the averages (call twice to restore exactly)."""
        for name, parameter in parameters.items():
            saved = parameter.detach().clone()
            parameter.copy_(self.shadow[name].to(parameter.dtype))
            self.shadow[name].copy_(saved.float())

    def full_state(self) -> dict[str, torch.Tensor]:
        """name -> full float32 tensor on the CPU (collective under FSDP: call on every rank)."""
        return {name: _full(tensor).detach().cpu().contiguous() for name, tensor in self.shadow.items()}

    @torch.no_grad()
    def load_full_state(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        missing = sorted(set(self.shadow) ^ set(state))
        if missing:
            raise ValueError(f"the EMA state does not match the trainable parameters: {missing[:5]}")
        for name, tensor in self.shadow.items():
            if hasattr(tensor, "device_mesh"):  # DTensor: keep this rank's shard
                from torch.distributed.tensor import distribute_tensor

                tensor.copy_(distribute_tensor(state[name].to(tensor.device), tensor.device_mesh, tensor.placements))
            else:
                tensor.copy_(state[name].to(tensor.device))
        self.num_updates = int(num_updates)
