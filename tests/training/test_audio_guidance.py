"""wav2vec2 features equal transformers' hidden states; audio windows; CFG dropout and guidance; a DDIM run."""

from __future__ import annotations

import pytest
import torch

from emoforge.training.audio import AudioProjection, audio_windows, wav2vec2_features
from emoforge.training.config import TINY
from emoforge.training.ddim import ddim_sample
from emoforge.training.emo import EMO
from emoforge.training.guidance import condition_dropout, drop_conditions, guided_epsilon, guided_epsilon_fn
from emoforge.training.schedule import alphas_cumprod
from emoforge.training.weights import load_wav2vec2


@pytest.fixture(scope="module")
def wav2vec2_folder(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=4,
                            num_conv_pos_embedding_groups=2, do_stable_layer_norm=False)
    folder = tmp_path_factory.mktemp("wav2vec2")
    Wav2Vec2Model(config).eval().save_pretrained(folder, safe_serialization=True)
    return folder


def test_wav2vec2_features_equal_transformers_hidden_states(wav2vec2_folder):
    from transformers import Wav2Vec2Model

    model, report = load_wav2vec2(wav2vec2_folder)
    assert report.missing == [] and report.unexpected == []
    reference = Wav2Vec2Model.from_pretrained(wav2vec2_folder).eval()
    waveform = torch.randn(2, 1600, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden = reference(waveform, output_hidden_states=True).hidden_states
        native = hidden[0].shape[1]
        ours = wav2vec2_features(model, waveform, num_frames=native)  # b f l d at the model's own rate
        resampled = wav2vec2_features(model, waveform, num_frames=native // 2 + 1)
    assert ours.shape == (2, native, TINY.audio.wav2vec_layers, 16)
    for layer, expected in enumerate(hidden):
        torch.testing.assert_close(ours[:, :, layer], expected)
    # Resampling keeps the first and last feature and interpolates linearly between.
    torch.testing.assert_close(resampled[:, 0], ours[:, 0])
    torch.testing.assert_close(resampled[:, -1], ours[:, -1])


def test_audio_windows_and_projection():
    features = torch.arange(4.0).reshape(1, 4, 1, 1).expand(1, 4, 3, 2)  # b f l d, value = frame index
    windows = audio_windows(features, window=2)
    assert windows.shape == (1, 4, 5, 3, 2)
    assert windows[0, :, :, 0, 0].tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3], [1, 2, 3, 3, 3]]
    tokens = AudioProjection(TINY.audio)(torch.randn(2, 3, 5, TINY.audio.wav2vec_layers, TINY.audio.wav2vec_dim))
    assert tokens.shape == (2, 3, TINY.audio.tokens_per_frame, TINY.audio.token_dim)


def test_condition_dropout_rates_and_zeroing():
    keep_audio, keep_reference = condition_dropout(20_000, 0.1, 0.3, torch.Generator().manual_seed(0))
    assert abs(1 - keep_audio.float().mean().item() - 0.1) < 0.01
    assert abs(1 - keep_reference.float().mean().item() - 0.3) < 0.01
    audio, reference = drop_conditions(torch.ones(2, 3, 5, 2, 4), torch.ones(2, 4, 8, 8),
                                       torch.tensor([True, False]), torch.tensor([False, True]))
    assert audio[0].eq(1).all() and audio[1].eq(0).all()
    assert reference[0].eq(0).all() and reference[1].eq(1).all()


def test_guidance_combination():
    uncond, reference_only, full = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([4.0])
    assert guided_epsilon(uncond, reference_only, full, 1.0, 1.0).item() == 4.0  # plain conditional
    assert guided_epsilon(uncond, reference_only, full, 2.0, 0.0).item() == 5.0
    assert guided_epsilon(uncond, reference_only, full, 0.0, 3.0).item() == 4.0


def test_guided_ddim_sampling_runs_end_to_end(emo_inputs):
    torch.manual_seed(0)
    model = EMO(TINY).eval()
    x = emo_inputs(TINY, batch=1)
    with torch.no_grad():
        epsilon_fn = guided_epsilon_fn(model, x["reference_latent"], x["audio_windows"],
                                       motion_latents=x["motion_latents"], speed_embedding=x["speed_embedding"],
                                       face_mask=x["face_mask"], reference_scale=1.0, audio_scale=1.0)
        plain = model(x["noisy_latents"], x["timestep"],
                      model.encode_reference(x["reference_latent"], x["motion_latents"]),
                      audio_windows=x["audio_windows"], speed_embedding=x["speed_embedding"],
                      face_mask=x["face_mask"])
        torch.testing.assert_close(epsilon_fn(x["noisy_latents"], x["timestep"]), plain, rtol=1e-4, atol=1e-4)
        steps = []
        video = ddim_sample(epsilon_fn, x["noisy_latents"], alphas_cumprod(TINY.diffusion), 3,
                            callback=lambda i, t, z: steps.append(t))
    assert video.shape == x["noisy_latents"].shape and torch.isfinite(video).all()
    assert steps == [667, 334, 1]
