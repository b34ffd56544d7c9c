"""Full-size SD 1.5 / SDXL pipelines with random weights, built from the bundled component configs.

For GPU benchmarks only: timings do not depend on weight values, and nothing can be downloaded. The
tokenizer is the offline byte-level one of the tiny models (token ids differ from CLIP's, shapes do not).
Modules are created directly on the target device so that random initialisation of billions of weights
happens there, not on the CPU.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ablerefusal.protocol import ModelFamily
from ablerefusal.testing.tiny import make_tokenizer
from ablerefusal.worker.engine.loading import BUNDLED_CONFIGS


def full_size_random_pipeline(family: ModelFamily | str, device: str, dtype: Any) -> Any:
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    family = ModelFamily(family)
    cfg = BUNDLED_CONFIGS / family.value

    def load(name: str) -> dict[str, Any]:
        return dict(json.loads((cfg / name).read_text()))

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tokenizer(Path(tmp))
    scheduler = EulerAncestralDiscreteScheduler.from_config(load("scheduler/scheduler_config.json"))
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(load("unet/config.json"))
        vae = AutoencoderKL.from_config(load("vae/config.json"))
        text_encoder = CLIPTextModel(CLIPTextConfig(**load("text_encoder/config.json")))
        pipe: Any
        if family is ModelFamily.sd15:
            pipe = StableDiffusionPipeline(
                vae=vae,
                text_encoder=text_encoder,
                tokenizer=tokenizer,
                unet=unet,
                scheduler=scheduler,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        else:
            text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**load("text_encoder_2/config.json")))
            pipe = StableDiffusionXLPipeline(
                vae=vae,
                text_encoder=text_encoder,
                text_encoder_2=text_encoder_2,
                tokenizer=tokenizer,
                tokenizer_2=tokenizer,
                unet=unet,
                scheduler=scheduler,
            )
    pipe = pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe
