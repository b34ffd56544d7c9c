"""Tiny random-weight adapters that fit the tiny models of ``tiny.py``: LoRAs (Kohya and diffusers/PEFT
layouts), a textual-inversion embedding and a VAE. Their shapes are read off the tiny pipeline of the family,
so they load the way real ones do; their effect is noise, like the models'.

Layout written into ``dest`` (a models directory): ``loras/<name>.safetensors`` (``tiny-<family>-kohya``,
``-peft``, ``-locon``),
``embeddings/<name>.safetensors``, ``vae/<name>.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.engine.detection import FAMILY_METADATA_KEY

_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# LyCORIS LoCon also adapts the convolutions of the UNet's ResNet blocks (Kohya key layout, 4-D tensors).
_CONV_TARGETS = ("conv1", "conv2")
_TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
LORA_RANK = 4


def _linear_shapes(module: Any, targets: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """{module path: (out, in)} of the Linear layers whose path ends with one of ``targets``."""
    import torch

    return {
        name: (m.out_features, m.in_features)
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and name.endswith(targets)
    }


def _text_path(name: str) -> str:
    """A text encoder module path in the original CLIP layout (``text_model.encoder…``), as LoRA files name them
    (newer transformers drop the ``text_model`` level from module paths)."""
    return name if name.startswith("text_model.") else f"text_model.{name}"


def _kohya_unet_name(path: str, family: ModelFamily, config: dict[str, Any]) -> str:
    """Kohya names SD 1.5 UNet layers by their diffusers path and SDXL ones by the original (sgm) path."""
    if family is ModelFamily.sdxl:
        import torch

        from ablerefusal.testing.ldm import UNET_PREFIX, unet_to_ldm

        ldm = next(iter(unet_to_ldm({f"{path}.weight": torch.empty(0)}, config)))
        path = ldm.removeprefix(UNET_PREFIX).removesuffix(".weight")
    return "lora_unet_" + path.replace(".", "_")


def _conv_shapes(module: Any, targets: tuple[str, ...]) -> dict[str, tuple[int, int, int, int]]:
    """{module path: (out, in, kh, kw)} of the ResNet convolutions whose path ends with one of ``targets``."""
    import torch

    shapes: dict[str, tuple[int, int, int, int]] = {}
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Conv2d) and ".resnets." in f".{name}" and name.endswith(targets):
            out_c, in_c, kh, kw = m.weight.shape
            shapes[name] = (out_c, in_c, kh, kw)
    return shapes


def _conv_pair(generator: Any, shape: tuple[int, int, int, int], strength: float) -> tuple[Any, Any]:
    """LoCon's factors of a k×k convolution: down is a rank-r k×k convolution, up a 1×1 one."""
    import torch

    out_c, in_c, kh, kw = shape
    down = torch.randn(LORA_RANK, in_c, kh, kw, generator=generator) / (in_c * kh * kw) ** 0.5
    up = torch.randn(out_c, LORA_RANK, 1, 1, generator=generator) * strength
    return down.contiguous(), up.contiguous()


def _kohya_pair(key: str, down: Any, up: Any) -> dict[str, Any]:
    """One layer's tensors as kohya's trainer names them (alpha = rank: a scale of 1)."""
    import torch

    return {
        f"{key}.lora_down.weight": down,
        f"{key}.lora_up.weight": up,
        f"{key}.alpha": torch.tensor(float(LORA_RANK)),
    }


def _pair(generator: Any, out_in: tuple[int, int], strength: float) -> tuple[Any, Any]:
    import torch

    out_f, in_f = out_in
    down = torch.randn(LORA_RANK, in_f, generator=generator) / in_f**0.5
    up = torch.randn(out_f, LORA_RANK, generator=generator) * strength
    return down.contiguous(), up.contiguous()


def lora_state(family: ModelFamily | str, fmt: str = "kohya", *, seed: int = 0, scale: int = 1) -> dict[str, Any]:
    """A LoRA's tensors for the tiny model of ``family``: UNet attention and text encoder attention layers.
    ``fmt``: ``kohya``, ``peft``, or ``locon`` (Kohya layout plus the UNet ResNet convolutions; for the same
    ``seed`` its attention and text tensors equal the ``kohya`` file's, so only the convolutions differ)."""
    import torch

    from ablerefusal.testing.tiny import build_tiny_pipeline

    family = ModelFamily(family)
    if fmt not in ("kohya", "peft", "locon"):
        raise ValueError("fmt must be 'kohya', 'peft' or 'locon'")
    locon, fmt = fmt == "locon", "kohya" if fmt == "locon" else fmt
    pipe = build_tiny_pipeline(family, scale=scale)
    generator = torch.Generator().manual_seed(seed)
    encoders = [("text_encoder", pipe.text_encoder)]
    if family is ModelFamily.sdxl:
        encoders.append(("text_encoder_2", pipe.text_encoder_2))
    out: dict[str, Any] = {}
    for path, shape in sorted(_linear_shapes(pipe.unet, _UNET_TARGETS).items()):
        down, up = _pair(generator, shape, 0.5)
        if fmt == "kohya":
            key = _kohya_unet_name(path, family, dict(pipe.unet.config))
            out |= _kohya_pair(key, down, up)
        else:
            out |= {f"unet.{path}.lora_A.weight": down, f"unet.{path}.lora_B.weight": up}
    for index, (prefix, encoder) in enumerate(encoders):
        for path, shape in sorted(_linear_shapes(encoder, _TEXT_TARGETS).items()):
            down, up = _pair(generator, shape, 0.5)
            full = _text_path(path)
            if fmt == "kohya":
                te = "lora_te" if family is ModelFamily.sd15 else f"lora_te{index + 1}"
                key = f"{te}_{full.replace('.', '_')}"
                out |= _kohya_pair(key, down, up)
            else:
                out |= {f"{prefix}.{full}.lora_A.weight": down, f"{prefix}.{full}.lora_B.weight": up}
    if locon:
        for path, conv in sorted(_conv_shapes(pipe.unet, _CONV_TARGETS).items()):
            down, up = _conv_pair(generator, conv, 0.5)
            key = _kohya_unet_name(path, family, dict(pipe.unet.config))
            out |= _kohya_pair(key, down, up)
    return out


def make_tiny_lora(
    dest: Path, family: ModelFamily | str, fmt: str = "kohya", *, name: str | None = None, seed: int = 0, scale: int = 1
) -> Path:
    from safetensors.torch import save_file

    family = ModelFamily(family)
    target = dest / "loras" / f"{name or f'tiny-{family.value}-{fmt}'}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = {FAMILY_METADATA_KEY: family.value}
    if fmt in ("kohya", "locon"):  # what kohya's trainer writes, so A1111-side readers recognise it
        metadata["ss_base_model_version"] = "sdxl_base_v1-0" if family is ModelFamily.sdxl else "sd_v1"
    save_file(lora_state(family, fmt, seed=seed, scale=scale), str(target), metadata=metadata)
    return target


def make_tiny_embedding(
    dest: Path, family: ModelFamily | str, *, name: str | None = None, vectors: int = 2, seed: int = 0
) -> Path:
    """A textual inversion of ``vectors`` tokens: A1111's ``emb_params`` (SD 1.5) or ``clip_l`` + ``clip_g``."""
    import torch
    from safetensors.torch import save_file

    from ablerefusal.testing.tiny import build_tiny_pipeline

    family = ModelFamily(family)
    pipe = build_tiny_pipeline(family)
    generator = torch.Generator().manual_seed(seed)

    def vecs(encoder: Any) -> Any:
        width = encoder.get_input_embeddings().weight.shape[1]
        return torch.randn(vectors, width, generator=generator).contiguous()

    if family is ModelFamily.sd15:
        state = {"emb_params": vecs(pipe.text_encoder)}
    else:
        state = {"clip_l": vecs(pipe.text_encoder), "clip_g": vecs(pipe.text_encoder_2)}
    target = dest / "embeddings" / f"{name or f'tiny-{family.value}-embedding'}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(target), metadata={FAMILY_METADATA_KEY: family.value})
    return target


def make_tiny_vae(dest: Path, *, name: str = "tiny-vae", seed: int = 1, scale: int = 1) -> Path:
    """A VAE of the tiny models' shape (the same for both families) in A1111's single-file layout."""
    import torch
    from safetensors.torch import save_file

    from ablerefusal.testing.ldm import VAE_PREFIX, vae_to_ldm
    from ablerefusal.testing.tiny import _vae

    torch.manual_seed(seed)
    vae = _vae(scale, 0.18215)
    state = {k.removeprefix(VAE_PREFIX): v.contiguous() for k, v in vae_to_ldm(vae.state_dict(), vae.config).items()}
    target = dest / "vae" / f"{name}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(target))
    return target


def make_tiny_adapters(dest: Path, family: ModelFamily | str, scale: int = 1) -> list[Path]:
    """Every tiny adapter of one family: LoRAs in both layouts and a LoCon (the Kohya LoRA's tensors plus the
    ResNet convolutions), an embedding, and the (shared) tiny VAE."""
    return [
        make_tiny_lora(dest, family, "kohya", scale=scale),
        make_tiny_lora(dest, family, "peft", seed=1, scale=scale),
        make_tiny_lora(dest, family, "locon", scale=scale),
        make_tiny_embedding(dest, family),
        make_tiny_vae(dest, scale=scale),
    ]
