"""Cheap latent previews: a fixed linear map from the 4 latent channels to RGB, no extra weights.

The factors are the widely used approximations for the SD 1.5 and SDXL VAEs (as in A1111's "Approx cheap").
"""

from __future__ import annotations

import base64
import io

import torch
from PIL import Image

from ablerefusal.protocol import ModelFamily

_FACTORS = {
    ModelFamily.sd15: (
        [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
        [0.0, 0.0, 0.0],
    ),
    ModelFamily.sdxl: (
        [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
        [0.1084, -0.0175, -0.0011],
    ),
}
PREVIEW_MAX_SIDE = 256


def latent_preview(latent: torch.Tensor, family: ModelFamily) -> str:
    """One latent (C, h, w) → base64 JPEG, upscaled to at most PREVIEW_MAX_SIDE."""
    weights, bias = _FACTORS[family]
    w = torch.tensor(weights, dtype=torch.float32)
    b = torch.tensor(bias, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent[:4].detach().float().cpu(), w) + b
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels, "RGB")
    scale = max(1, PREVIEW_MAX_SIDE // max(image.size))
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=70)
    return base64.b64encode(buf.getvalue()).decode("ascii")
