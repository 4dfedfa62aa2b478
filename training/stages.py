"""Which parameters train in each of EMO's three stages (paper §3.3).

Stage 1 (image pretraining): Backbone, ReferenceNet and Face Locator, single frames.
Stage 2 (video training): stage 1's parts plus the temporal modules and the audio
layers (audio-attention and the audio projection), on n + f frames.
Stage 3: only the temporal modules and the speed layers (speed encoder and speed
attention); the audio layers are frozen so motion stays driven by audio.

Parameters are grouped by the module type that owns them, never by name matching.
"""

from __future__ import annotations

from torch import nn

from .attention import AudioAttention
from .audio import AudioProjection
from .face_locator import FaceLocator
from .speed import SpeedEncoder
from .temporal import SpeedAttention, TemporalTransformer

GROUPS = ("backbone", "reference_net", "face_locator", "temporal", "audio", "speed")

STAGES: dict[int, frozenset[str]] = {
    1: frozenset({"backbone", "reference_net", "face_locator"}),
    2: frozenset({"backbone", "reference_net", "face_locator", "temporal", "audio"}),
    3: frozenset({"temporal", "speed"}),
}

# Innermost owner wins: speed attention sits inside a temporal module, audio-attention
# inside a Backbone transformer block.
_OWNERS: tuple[tuple[type, str], ...] = (
    (SpeedAttention, "speed"), (SpeedEncoder, "speed"), (AudioAttention, "audio"), (AudioProjection, "audio"),
    (TemporalTransformer, "temporal"), (FaceLocator, "face_locator"),
)


def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """group -> qualified parameter names of an `EMO` model; every parameter in exactly one group."""
    owner: dict[str, str] = {}
    for module_name, module in model.named_modules():
        group = next((g for kind, g in _OWNERS if isinstance(module, kind)), None)
        if group is None:
            continue
        prefix = f"{module_name}." if module_name else ""
        for name, _ in module.named_parameters():
            # Visit order is outer before inner, so an inner owner overwrites the outer one.
            owner[prefix + name] = group
    groups: dict[str, list[str]] = {group: [] for group in GROUPS}
    for name, _ in model.named_parameters():
        if name in owner:
            groups[owner[name]].append(name)
        elif name.startswith("reference_net."):
            groups["reference_net"].append(name)
        elif name.startswith("backbone."):
            groups["backbone"].append(name)
        else:
            raise ValueError(f"parameter {name} belongs to no EMO part")
    return groups


def trainable_parameters(model: nn.Module, stage: int) -> dict[str, nn.Parameter]:
    """name -> parameter that trains in `stage` (1, 2 or 3); sets `requires_grad` to match on every parameter."""
    if stage not in STAGES:
        raise ValueError(f"EMO has training stages 1, 2 and 3, not {stage!r}")
    groups = parameter_groups(model)
    chosen = {name for group in STAGES[stage] for name in groups[group]}
    trainable = {}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in chosen)
        if name in chosen:
            trainable[name] = parameter
    return trainable


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """group -> number of parameters (works on meta-device models)."""
    sizes = {name: parameter.numel() for name, parameter in model.named_parameters()}
    return {group: sum(sizes[name] for name in names) for group, names in parameter_groups(model).items()}
