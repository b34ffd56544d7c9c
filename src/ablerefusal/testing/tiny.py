"""Tiny random-weight SD 1.5 / SDXL models, built from the real diffusers and transformers classes.

They exist so that tests, CI and people without internet can run the whole platform end to end. Their
images are noise: the weights are random. ``scale`` multiplies every channel width, so a benchmark can make
one where a 64x64 job takes a measurable fraction of a second.

Layout written into ``dest`` (a models directory):
- diffusers format: ``dest/<name>/`` (``model_index.json`` + component folders + ``ablerefusal.json``).
- single-file: ``dest/<name>.safetensors`` in the original A1111/LDM layout, plus the sidecar
  ``dest/<name>.config/`` diffusers config folder (configs and tokenizer files, no weights) that a tiny
  checkpoint needs because its shapes are not the full-size SD 1.5 / SDXL ones (see engine/loading.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ablerefusal.protocol import ModelFamily, ModelFormat
from ablerefusal.worker.engine.detection import (
    DEMO_METADATA_KEY,
    FAMILY_METADATA_KEY,
    MARKER_FILE,
    SIDECAR_SUFFIX,
)

_SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
# A few merges so the tokenizer exercises real BPE rather than bytes only.
_MERGES = ("t h", "th e</w>", "a n", "an d</w>", "o f</w>", "i n", "in g</w>", "c a", "ca t</w>", "d o", "do g</w>")


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte→printable-character table (the tokenizer's byte alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


def make_tokenizer(work: Path) -> Any:
    """A real CLIPTokenizer over a byte-level vocabulary, written offline."""
    from transformers import CLIPTokenizer

    alphabet = _bytes_to_unicode()
    tokens = alphabet + [c + "</w>" for c in alphabet] + [m.replace(" ", "") for m in _MERGES] + list(_SPECIAL_TOKENS)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (work / "vocab.json").write_text(json.dumps(vocab))
    (work / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    return CLIPTokenizer(vocab=str(work / "vocab.json"), merges=str(work / "merges.txt"), model_max_length=77)


def _text_config(tokenizer: Any, hidden: int, projection: int) -> Any:
    from transformers import CLIPTextConfig

    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=eos,
        pad_token_id=eos,
    )


def _vae(scale: int, scaling_factor: float) -> Any:
    from diffusers import AutoencoderKL

    c = 16 * scale
    # Four blocks keep the real 8x latent downscale, so sizes and previews behave like full-size models.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(c, c, 2 * c, 2 * c),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    # The SD 1.5 / SDXL training schedule; every sampler is derived from this config.
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )


def build_tiny_pipeline(family: ModelFamily | str, scale: int = 1, seed: int = 0, inpainting: bool = False) -> Any:
    """Build the tiny pipeline in memory (random weights, deterministic for a given seed). ``inpainting``: a
    dedicated inpainting model, whose UNet also takes the mask and the masked image's latents (9 channels)."""
    import torch
    from diffusers import (
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    family = ModelFamily(family)
    if scale < 1:
        raise ValueError("scale must be >= 1")
    torch.manual_seed(seed)
    c = 32 * scale
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tokenizer(Path(tmp))
    if family is ModelFamily.sd15:
        text_encoder = CLIPTextModel(_text_config(tokenizer, 32, 32))
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=9 if inpainting else 4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(c, 2 * c),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=2,
            norm_num_groups=8,
        )
        sd_cls = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
        return sd_cls(
            vae=_vae(scale, 0.18215),
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    # SDXL: two text encoders of different widths (as CLIP-L and OpenCLIP-bigG), text_time conditioning.
    text_encoder = CLIPTextModel(_text_config(tokenizer, 32, 32))
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer, 64, 32))
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=9 if inpainting else 4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(c, 2 * c),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32 + 64,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,
        norm_num_groups=8,
    )
    xl_cls = StableDiffusionXLInpaintPipeline if inpainting else StableDiffusionXLPipeline
    return xl_cls(
        vae=_vae(scale, 0.13025),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        force_zeros_for_empty_prompt=True,
    )


def make_tiny(
    dest: Path,
    family: ModelFamily | str,
    fmt: ModelFormat | str = ModelFormat.diffusers,
    *,
    name: str | None = None,
    scale: int = 1,
    inpainting: bool = False,
) -> Path:
    """Write a tiny model into the models directory ``dest``; returns the model's folder or checkpoint."""
    from safetensors.torch import save_file

    from ablerefusal.testing.ldm import pipeline_to_ldm

    family, fmt = ModelFamily(family), ModelFormat(fmt)
    if fmt is ModelFormat.hub:
        raise ValueError("format must be 'diffusers' or 'single-file'")
    kind = "-inpainting" if inpainting else ""
    name = name or f"tiny-{family.value}{kind}" + ("-single" if fmt is ModelFormat.single_file else "")
    dest.mkdir(parents=True, exist_ok=True)
    pipe = build_tiny_pipeline(family, scale=scale, inpainting=inpainting)
    marker = {"demo": True, "family": family.value, "scale": scale, "note": "random weights: images are noise"}
    if fmt is ModelFormat.diffusers:
        target = dest / name
        pipe.save_pretrained(target, safe_serialization=True)
        (target / MARKER_FILE).write_text(json.dumps(marker, indent=2))
        return target
    target = dest / f"{name}.safetensors"
    sidecar = dest / f"{name}{SIDECAR_SUFFIX}"
    pipe.save_pretrained(sidecar, safe_serialization=True)
    for weights in sidecar.rglob("*.safetensors"):
        weights.unlink()  # the sidecar holds configs and tokenizer files only
    save_file(
        pipeline_to_ldm(pipe),
        str(target),
        metadata={DEMO_METADATA_KEY: "true", FAMILY_METADATA_KEY: family.value},
    )
    shutil.rmtree(sidecar / "safety_checker", ignore_errors=True)
    return target
