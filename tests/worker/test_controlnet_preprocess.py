"""ControlNet pieces without a pipeline: family detection from tensor names and shapes, fitting a control map
to the job's size as sd-webui-controlnet does, Pixel Perfect's resolution, and the preprocessor table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ablerefusal.protocol import ModelFamily, ResizeMode
from ablerefusal.worker.engine.controlnet.models import (
    family_from_controlnet_config,
    family_from_controlnet_header,
)
from ablerefusal.worker.engine.controlnet.preprocess import (
    PREPROCESSORS,
    availability,
    canny,
    fit_control_map,
    pixel_perfect_resolution,
)
from ablerefusal.worker.engine.detection import UnsupportedModelError


def header(*names: str, to_k: int = 768) -> dict[str, Any]:
    out: dict[str, Any] = {name: {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]} for name in names}
    for name in names:
        if name.endswith("attn2.to_k.weight"):
            out[name] = {"dtype": "F16", "shape": [320, to_k], "data_offsets": [0, 8]}
    return out


def test_family_from_tensors() -> None:
    a1111 = ("input_hint_block.0.weight", "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight")
    assert family_from_controlnet_header(header(*a1111)) is ModelFamily.sd15
    prefixed = tuple(f"control_model.{n}" for n in a1111)
    assert family_from_controlnet_header(header(*prefixed)) is ModelFamily.sd15
    xl = ("controlnet_cond_embedding.conv_in.weight", "add_embedding.linear_1.weight")
    assert family_from_controlnet_header(header(*xl)) is ModelFamily.sdxl
    assert family_from_controlnet_header(header("input_hint_block.0.weight", "label_emb.0.0.weight")) is (
        ModelFamily.sdxl
    )
    with pytest.raises(UnsupportedModelError, match="SD 2"):
        family_from_controlnet_header(header(*a1111, to_k=1024))
    with pytest.raises(UnsupportedModelError, match="Control-LoRA"):
        family_from_controlnet_header(header("lora_controlnet", "input_blocks.0.0.weight"))
    with pytest.raises(UnsupportedModelError, match="not a ControlNet"):
        family_from_controlnet_header(header("model.diffusion_model.input_blocks.0.0.weight"))
    assert family_from_controlnet_config({"_class_name": "ControlNetModel", "addition_embed_type": "text_time"}) is (
        ModelFamily.sdxl
    )
    with pytest.raises(UnsupportedModelError, match="not a ControlNet"):
        family_from_controlnet_config({"_class_name": "UNet2DConditionModel"})


def halves(width: int, height: int) -> np.ndarray:
    """Left half 50, right half 200 (few colours: resized with nearest neighbour, so values stay exact)."""
    out = np.zeros((height, width, 3), np.uint8)
    out[:, : width // 2] = 50
    out[:, width // 2 :] = 200
    return out


def test_fit_modes() -> None:
    wide = halves(128, 64)
    stretched = fit_control_map(wide, 64, 64, ResizeMode.resize)
    assert stretched.shape == (64, 64, 3) and stretched[0, 0, 0] == 50 and stretched[0, 63, 0] == 200
    cropped = fit_control_map(wide, 64, 64, ResizeMode.crop)  # cover: 128x64 stays, centre 64 columns kept
    assert cropped.shape == (64, 64, 3)
    assert (cropped[:, :32] == 50).all() and (cropped[:, 32:] == 200).all()
    # Fill: fit inside (64x32) and pad with the median colour of the map's border.
    bordered = np.full((64, 128, 3), 255, np.uint8)
    bordered[0], bordered[-1], bordered[:, 0], bordered[:, -1] = 7, 7, 7, 7
    filled = fit_control_map(bordered, 64, 64, ResizeMode.fill)
    assert filled.shape == (64, 64, 3)
    assert (filled[:16] == 7).all() and (filled[48:] == 7).all()
    assert (filled[20:44, 4:60] == 255).all()


def test_pixel_perfect_resolution() -> None:
    image = np.zeros((50, 100, 3), np.uint8)
    assert pixel_perfect_resolution(image, 512, 512, ResizeMode.crop) == 512  # cover: short side to 512
    assert pixel_perfect_resolution(image, 512, 512, ResizeMode.fill) == 256  # fit inside: long side to 512


def test_canny_works_at_processor_res() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 255
    edges = canny(image, 256, 100, 200)
    assert edges.shape == (256, 256, 3)
    assert edges[128, 128].max() == 0 and edges[:, :, 0].any()


def test_annotators_need_weights_and_pickle_opt_in(tmp_path: Path) -> None:
    hed = PREPROCESSORS["softedge_hed"]
    assert "controlnet/annotators/ControlNetHED.pth" in (availability(hed, tmp_path, allow_pickle=True) or "")
    (tmp_path / "controlnet" / "annotators").mkdir(parents=True)
    (tmp_path / "controlnet" / "annotators" / "ControlNetHED.pth").write_bytes(b"\x80\x02")
    assert "--allow-pickle" in (availability(hed, tmp_path, allow_pickle=False) or "")
    reason = availability(hed, tmp_path, allow_pickle=True)
    try:
        import controlnet_aux.hed  # noqa: F401
    except Exception:
        assert reason is not None and "controlnet-aux" in reason
    else:
        assert reason is None
    assert availability(PREPROCESSORS["canny"], tmp_path, allow_pickle=False) is None
