"""Export diffusers components to the original LDM (A1111/Civitai) single-file layout.

This is the inverse of diffusers' own ``single_file_utils`` converters. We need it to write tiny single-file
checkpoints, whose loading then goes through the very code path a real A1111 checkpoint takes; a round-trip
test checks the two directions agree. Only what SD 1.5 and SDXL use is covered.
"""

from __future__ import annotations

from typing import Any

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD15_CLIP_PREFIX = "cond_stage_model.transformer."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPENCLIP_PREFIX = "conditioner.embedders.1.model."

_UNET_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet_suffix(suffix: str) -> str:
    head, _, rest = suffix.partition(".")
    for new, old in _UNET_RESNET:
        if head == new:
            return f"{old}.{rest}"
    raise ValueError(f"unexpected resnet parameter {suffix!r}")


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map a diffusers UNet2DConditionModel state dict to ``model.diffusion_model.*`` keys."""
    lpb = int(config["layers_per_block"])
    n_blocks = len(config["down_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        top = ".".join(parts[:-1])
        if top in _UNET_TOP:
            ldm = f"{_UNET_TOP[top]}.{parts[-1]}"
        elif parts[0] == "down_blocks":
            block, kind, idx, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            base = 1 + block * (lpb + 1)
            if kind == "resnets":
                ldm = f"input_blocks.{base + idx}.0.{_resnet_suffix(rest)}"
            elif kind == "attentions":
                ldm = f"input_blocks.{base + idx}.1.{rest}"
            else:  # downsamplers.0.conv.*: its own input block after the block's layers
                ldm = f"input_blocks.{base + lpb}.0.op.{parts[-1]}"
        elif parts[0] == "mid_block":
            kind, idx, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            # LDM's middle block is [resnet, attention, resnet].
            ldm = f"middle_block.{2 * idx}.{_resnet_suffix(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            block, kind, idx, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            base = block * (lpb + 1)
            if kind == "resnets":
                ldm = f"output_blocks.{base + idx}.0.{_resnet_suffix(rest)}"
            elif kind == "attentions":
                ldm = f"output_blocks.{base + idx}.1.{rest}"
            else:  # upsamplers.0.conv.*: after the last layer's resnet (and attention, if the block has one)
                has_attn = "CrossAttn" in config["up_block_types"][block]
                ldm = f"output_blocks.{base + lpb}.{2 if has_attn else 1}.conv.{parts[-1]}"
        else:
            raise ValueError(f"unexpected UNet parameter {key!r} (blocks: {n_blocks})")
        out[UNET_PREFIX + ldm] = value
    return out


def _vae_attention(rest: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    renames = {
        "group_norm": "norm",
        "to_q": "q",
        "to_k": "k",
        "to_v": "v",
        "to_out.0": "proj_out",
    }
    for new, old in renames.items():
        if rest.startswith(new + "."):
            rest = old + rest[len(new) :]
            break
    # LDM keeps the attention projections as 1x1 convolutions.
    if rest.endswith("weight") and value.ndim == 2:
        value = value[:, :, None, None]
    return rest, value


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map a diffusers AutoencoderKL state dict to ``first_stage_model.*`` keys."""
    n_up = len(config["up_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        side = parts[0]
        if side in ("quant_conv", "post_quant_conv"):
            out[VAE_PREFIX + key] = value
            continue
        sub = parts[1]
        if sub in ("conv_in", "conv_out"):
            ldm = key
        elif sub == "conv_norm_out":
            ldm = f"{side}.norm_out.{parts[-1]}"
        elif sub == "down_blocks":
            block, kind = int(parts[2]), parts[3]
            if kind == "resnets":
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                ldm = f"{side}.down.{block}.block.{parts[4]}.{rest}"
            else:
                ldm = f"{side}.down.{block}.downsample.conv.{parts[-1]}"
        elif sub == "up_blocks":
            block, kind = n_up - 1 - int(parts[2]), parts[3]
            if kind == "resnets":
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                ldm = f"{side}.up.{block}.block.{parts[4]}.{rest}"
            else:
                ldm = f"{side}.up.{block}.upsample.conv.{parts[-1]}"
        elif sub == "mid_block":
            kind, idx = parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                ldm = f"{side}.mid.block_{idx + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
            else:
                rest, value = _vae_attention(rest, value)
                ldm = f"{side}.mid.attn_1.{rest}"
        else:
            raise ValueError(f"unexpected VAE parameter {key!r}")
        out[VAE_PREFIX + ldm] = value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """CLIP-L keeps the transformers layout under a prefix (newer transformers drop the ``text_model.`` level)."""
    return {
        prefix + (key if key.startswith("text_model.") else f"text_model.{key}"): value
        for key, value in state.items()
        if not key.endswith("position_ids")
    }


def openclip_to_ldm(state: dict[str, torch.Tensor], prefix: str = SDXL_OPENCLIP_PREFIX) -> dict[str, torch.Tensor]:
    """CLIPTextModelWithProjection → OpenCLIP layout (fused in_proj, transposed text_projection)."""
    state = {
        (k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}"): v for k, v in state.items()
    }
    out: dict[str, torch.Tensor] = {
        prefix + "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        prefix + "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        prefix + "ln_final.weight": state["text_model.final_layer_norm.weight"],
        prefix + "ln_final.bias": state["text_model.final_layer_norm.bias"],
        prefix + "text_projection": state["text_projection.weight"].T.contiguous(),
    }
    layer_ids = sorted({int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layers.")})
    for i in layer_ids:
        src = f"text_model.encoder.layers.{i}."
        dst = f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [state[f"{src}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")], dim=0
            )
            out[f"{dst}attn.out_proj.{kind}"] = state[f"{src}self_attn.out_proj.{kind}"]
            out[f"{dst}ln_1.{kind}"] = state[f"{src}layer_norm1.{kind}"]
            out[f"{dst}ln_2.{kind}"] = state[f"{src}layer_norm2.{kind}"]
            out[f"{dst}mlp.c_fc.{kind}"] = state[f"{src}mlp.fc1.{kind}"]
            out[f"{dst}mlp.c_proj.{kind}"] = state[f"{src}mlp.fc2.{kind}"]
    return out


def pipeline_to_ldm(pipe: Any) -> dict[str, torch.Tensor]:
    """The whole pipeline as one LDM state dict (SD 1.5 when it has no ``text_encoder_2``, else SDXL)."""
    out = unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config))
    out.update(vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    if getattr(pipe, "text_encoder_2", None) is None:
        out.update(clip_to_ldm(pipe.text_encoder.state_dict(), SD15_CLIP_PREFIX))
    else:
        out.update(clip_to_ldm(pipe.text_encoder.state_dict(), SDXL_CLIP_PREFIX))
        out.update(openclip_to_ldm(pipe.text_encoder_2.state_dict()))
    return {k: v.detach().contiguous() for k, v in out.items()}
