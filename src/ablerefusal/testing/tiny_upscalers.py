"""Tiny random-weight ESRGAN upscalers (RRDBNet with 8 features, 1 block) in the layouts real files have, for
offline tests and demos. Their images are not upscaled photos, only images of the right size."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TINY_SPEC = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def tiny_rrdbnet(scale: int, seed: int = 0) -> Any:
    """A tiny ``RRDBNet`` of ``scale`` 1, 2 or 4, built as Real-ESRGAN builds them (the x4 body; x2 and x1 by
    pixel-unshuffling the input)."""
    import torch

    from ablerefusal.worker.engine.upscalers.rrdbnet import RRDBNet
    from ablerefusal.worker.engine.upscalers.spec import RRDBSpec

    torch.manual_seed(seed)
    unshuffle = {4: 1, 2: 2, 1: 4}[scale]
    return RRDBNet(RRDBSpec(**TINY_SPEC, num_upsample=2, unshuffle=unshuffle)).eval()


def to_old_names(state: dict[str, Any], num_upsample: int) -> dict[str, Any]:
    """BasicSR names -> the original ESRGAN's flattened ``model.N`` names (the inverse of
    ``engine.upscalers.loading``'s conversion, written out separately so a test checks one against the other)."""
    num_block = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    last = 5 + 3 * num_upsample - 1
    fixed = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}", "conv_hr": f"model.{last - 2}"}
    fixed |= {"conv_last": f"model.{last}"} | {f"conv_up{n + 1}": f"model.{3 + 3 * n}" for n in range(num_upsample)}
    out = {}
    for key, value in state.items():
        if m := re.match(r"^body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$", key):
            block, rdb, conv, kind = m.groups()
            out[f"model.1.sub.{block}.RDB{rdb}.conv{conv}.0.{kind}"] = value
        else:
            layer, kind = key.rsplit(".", 1)
            out[f"{fixed[layer]}.{kind}"] = value
    return out


def make_tiny_upscalers(dest: Path) -> list[Path]:
    """``upscalers/tiny-esrgan-x4`` and ``tiny-esrgan-x2`` (Real-ESRGAN names) and
    ``models/ESRGAN/tiny-esrgan-old-x4`` (original ESRGAN names, A1111's folder), all ``.safetensors``."""
    from safetensors.torch import save_file

    written = []
    for scale, seed in ((4, 0), (2, 1)):
        target = dest / "upscalers" / f"tiny-esrgan-x{scale}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tiny_rrdbnet(scale, seed).state_dict().items()}, str(target))
        written.append(target)
    old = dest / "models" / "ESRGAN" / "tiny-esrgan-old-x4.safetensors"
    old.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in tiny_rrdbnet(4, seed=2).state_dict().items()}
    save_file(to_old_names(state, num_upsample=2), str(old))
    written.append(old)
    return written
