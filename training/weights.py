"""Loading pretrained weights into EMO (paper §3.3: Backbone and ReferenceNet from SD1.5, temporal from AnimateDiff).

Folders, never pickles: a diffusers UNet folder (config.json +
diffusion_pytorch_model.safetensors), a diffusers MotionAdapter folder, a diffusers
AutoencoderKL folder, a transformers wav2vec2 folder. Every load returns a
`KeyReport` (missing and unexpected keys, and keys EMO derives from others); any
shape mismatch is refused with one error listing all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from .config import UNetConfig

SAFETENSORS_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")


@dataclass
class KeyReport:
    """What a load did: keys the model kept at its own initialisation, keys the file had in vain."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not used
    derived: dict[str, str] = field(default_factory=dict)  # model key -> file key it was copied from

    def summary(self) -> str:
        return (f"{self.source}: {len(self.loaded)} loaded, {len(self.derived)} derived, "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected")


def read_safetensors_folder(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json as a dict, the state dict) of a diffusers/transformers model folder."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.json in {folder}")
    for name in SAFETENSORS_NAMES:
        if (folder / name).is_file():
            return json.loads(config_path.read_text()), load_file(folder / name)
    if any(folder.glob("*.bin")) or any(folder.glob("*.ckpt")):
        raise ValueError(f"{folder} holds only pickled weights; convert them to safetensors first")
    raise FileNotFoundError(f"no safetensors weights ({', '.join(SAFETENSORS_NAMES)}) in {folder}")


def unet_config_from_diffusers(config: dict) -> UNetConfig:
    """Map a diffusers UNet2DConditionModel config.json onto `UNetConfig`; refuse what SD1.5's layout lacks."""
    down_types = tuple(config["down_block_types"])
    up_types = tuple(config["up_block_types"])
    down_attention = tuple(t == "CrossAttnDownBlock2D" for t in down_types)
    if not all(t in ("CrossAttnDownBlock2D", "DownBlock2D") for t in down_types):
        raise ValueError(f"unsupported down blocks {down_types}")
    expected_up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(down_attention))
    if up_types != expected_up:
        raise ValueError(f"up blocks {up_types} do not mirror the down blocks (expected {expected_up})")
    unsupported = {
        "use_linear_projection": False, "mid_block_type": "UNetMidBlock2DCrossAttn", "class_embed_type": None,
        "addition_embed_type": None, "time_embedding_type": "positional", "resnet_time_scale_shift": "default",
        "upcast_attention": False, "dual_cross_attention": False, "only_cross_attention": False,
    }
    for key, value in unsupported.items():
        if config.get(key, value) != value:
            raise ValueError(f"unsupported UNet config {key}={config[key]!r} (SD1.5 has {value!r})")
    for key in ("layers_per_block", "transformer_layers_per_block", "cross_attention_dim", "attention_head_dim"):
        if isinstance(config.get(key), list):
            raise ValueError(f"per-block {key} is not supported (SD1.5 uses one value)")
    if config.get("transformer_layers_per_block", 1) != 1:
        raise ValueError("SD1.5 has one transformer layer per spatial transformer")
    # diffusers' SD1.5 config stores the number of heads under `attention_head_dim`.
    heads = config.get("num_attention_heads") or config.get("attention_head_dim", 8)
    return UNetConfig(
        in_channels=config.get("in_channels", 4), out_channels=config.get("out_channels", 4),
        block_out_channels=tuple(config["block_out_channels"]), down_attention=down_attention,
        layers_per_block=config.get("layers_per_block", 2), num_attention_heads=heads,
        cross_attention_dim=config.get("cross_attention_dim", 768), norm_num_groups=config.get("norm_num_groups", 32),
        norm_eps=config.get("norm_eps", 1e-5), flip_sin_to_cos=config.get("flip_sin_to_cos", True),
        freq_shift=config.get("freq_shift", 0))


def load_into(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str,
              derived: dict[str, str] | None = None) -> KeyReport:
    """Copy matching tensors into `module`; `derived` maps model keys to the file keys that initialise them.

    Shape mismatches are refused before anything is copied; missing keys keep the
    module's own initialisation (zero for EMO's new branches).
    """
    derived = derived or {}
    target = module.state_dict()
    plan: dict[str, str] = {key: key for key in target if key in state_dict}
    for model_key, file_key in derived.items():
        if model_key in target and file_key in state_dict:
            plan[model_key] = file_key
    mismatches = [f"{key} <- {plan[key]}: model {tuple(target[key].shape)}, file {tuple(state_dict[plan[key]].shape)}"
                  for key in plan if target[key].shape != state_dict[plan[key]].shape]
    if mismatches:
        raise ValueError(f"shape mismatch loading {source} ({len(mismatches)} tensors):\n  " + "\n  ".join(mismatches))
    with torch.no_grad():
        for model_key, file_key in plan.items():
            target[model_key].copy_(state_dict[file_key])
    used = set(plan.values())
    return KeyReport(
        source=source,
        loaded=sorted(k for k, v in plan.items() if k == v),
        missing=sorted(k for k in target if k not in plan),
        unexpected=sorted(k for k in state_dict if k not in used),
        derived={k: v for k, v in sorted(plan.items()) if k != v},
    )


def load_sd_unet(unet: nn.Module, folder: str | Path) -> KeyReport:
    """Load an SD1.5-layout diffusers UNet folder into our `UNet` (text, reference or self mode).

    In reference and self mode the cross-attention slot reads `c`-wide features, not
    768-wide text, so its key/value projections are taken from the same block's
    self-attention (DESIGN §4) and the text ones are reported unexpected.
    """
    config, state_dict = read_safetensors_folder(folder)
    ours = unet.config
    theirs = unet_config_from_diffusers(config)
    for name in ("block_out_channels", "down_attention", "layers_per_block", "num_attention_heads", "in_channels"):
        if getattr(ours, name) != getattr(theirs, name):
            raise ValueError(f"{folder}: {name} is {getattr(theirs, name)} in the file, {getattr(ours, name)} here")
    if ours.cross_attention_mode == "text":
        return load_into(unet, state_dict, str(folder))
    derived = {f"{key}.attn2.{projection}.weight": f"{key}.attn1.{projection}.weight"
               for key in unet.transformer_keys() for projection in ("to_k", "to_v")}
    text_projections = {f"{key}.attn2.{projection}.weight"
                        for key in unet.transformer_keys() for projection in ("to_k", "to_v")}
    kept = {k: v for k, v in state_dict.items() if k not in text_projections}
    report = load_into(unet, kept, str(folder), derived)
    report.unexpected = sorted(report.unexpected + [k for k in state_dict if k in text_projections])
    return report


def load_motion_adapter(backbone: nn.Module, folder: str | Path) -> KeyReport:
    """Load AnimateDiff motion modules from a diffusers MotionAdapter folder into the Backbone.

    The adapter's keys (`down_blocks.i.motion_modules.j...`, `mid_block...`,
    `up_blocks...`) are the Backbone's own; everything else in the Backbone is reported
    missing (it comes from SD1.5 or is new), EMO's speed attention included.
    """
    config, state_dict = read_safetensors_folder(folder)
    temporal = backbone.temporal_config
    if temporal is None:
        raise ValueError("this UNet has no temporal modules to load a MotionAdapter into")
    checks = {
        "block_out_channels": (tuple(config.get("block_out_channels", ())), backbone.config.block_out_channels),
        "motion_layers_per_block": (config.get("motion_layers_per_block", 2), backbone.config.layers_per_block),
        "motion_num_attention_heads": (config.get("motion_num_attention_heads", 8), temporal.num_attention_heads),
        "motion_transformer_layers_per_block": (config.get("motion_transformer_layers_per_block", 1),
                                                temporal.transformer_layers),
        "use_motion_mid_block": (config.get("use_motion_mid_block", True), temporal.mid_block),
        "motion_max_seq_length": (config.get("motion_max_seq_length", 32), temporal.max_seq_length),
    }
    for name, (theirs, ours) in checks.items():
        if theirs != ours:
            raise ValueError(f"{folder}: MotionAdapter {name} is {theirs}, this Backbone has {ours}")
    if config.get("conv_in_channels"):
        raise ValueError(f"{folder}: MotionAdapters with their own conv_in (PIA/SparseCtrl) are not EMO's")
    report = load_into(backbone, state_dict, str(folder))
    not_motion = [k for k in report.unexpected if ".motion_modules." not in k]
    if not_motion:
        raise ValueError(f"{folder} is not a MotionAdapter: unexpected keys {not_motion[:5]}...")
    if report.unexpected:
        raise ValueError(f"{folder}: motion modules this Backbone lacks: {report.unexpected[:5]}...")
    return report


def load_sd15_into_emo(model: nn.Module, folder: str | Path) -> dict[str, KeyReport]:
    """SD1.5 UNet folder -> both the Backbone and the ReferenceNet (paper §3.3: both inherit SD's weights).

    The Backbone reports its new branches (audio/speed attention, temporal modules) as
    missing; the ReferenceNet reports SD's output head as unexpected (it has none).
    """
    return {"backbone": load_sd_unet(model.backbone, folder),
            "reference_net": load_sd_unet(model.reference_net, folder)}


def _report_from_info(source: str, module: nn.Module, info: dict) -> KeyReport:
    if info.get("mismatched_keys"):
        raise ValueError(f"shape mismatch loading {source}: {info['mismatched_keys']}")
    if info.get("error_msgs"):
        raise ValueError(f"errors loading {source}: {info['error_msgs']}")
    missing = sorted(info.get("missing_keys", []))
    return KeyReport(source=source, loaded=sorted(set(module.state_dict()) - set(missing)), missing=missing,
                     unexpected=sorted(info.get("unexpected_keys", [])))


def load_vae(folder: str | Path) -> tuple[nn.Module, KeyReport]:
    """SD's VAE (diffusers AutoencoderKL) from a folder, safetensors only; the encoder E and decoder D of §3.1."""
    from diffusers import AutoencoderKL

    read_safetensors_folder(folder)  # refuses pickled weights with a clear message
    vae, info = AutoencoderKL.from_pretrained(folder, use_safetensors=True, output_loading_info=True)
    return vae.eval(), _report_from_info(str(folder), vae, info)


def load_wav2vec2(folder: str | Path) -> tuple[nn.Module, KeyReport]:
    """wav2vec2 (transformers Wav2Vec2Model) from a folder, safetensors only; the audio encoder of §3.2."""
    from transformers import Wav2Vec2Model

    read_safetensors_folder(folder)
    model, info = Wav2Vec2Model.from_pretrained(folder, use_safetensors=True, output_loading_info=True)
    return model.eval(), _report_from_info(str(folder), model, info)
