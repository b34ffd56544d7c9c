"""Textual-inversion embeddings: A1111's ``emb_params`` / ``string_to_param`` (SD 1.5), the SDXL pair
``clip_l`` + ``clip_g``, and diffusers' ``{token: vector}`` files. The vector width says the family: 768 is
SD 1.5 (CLIP-L), 1024 SD 2.x (refused); an SDXL file has both encoders' vectors.
"""

from __future__ import annotations

from typing import Any

from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.engine.detection import FAMILY_METADATA_KEY, UnsupportedModelError

SDXL_KEYS = ("clip_l", "clip_g")


def recognise_embedding(shapes: dict[str, list[int]], metadata: dict[str, str] | None = None) -> ModelFamily:
    """The family of an embedding from its tensor names and shapes ({name: shape})."""
    if all(k in shapes for k in SDXL_KEYS):
        return ModelFamily.sdxl
    if any(k in shapes for k in SDXL_KEYS):
        raise UnsupportedModelError("an SDXL embedding needs both clip_l and clip_g vectors")
    vectors = [s for s in shapes.values() if 1 <= len(s) <= 2]
    if len(vectors) != 1 or len(shapes) != 1:
        raise UnsupportedModelError("not a textual-inversion embedding: expected one vector tensor")
    width = vectors[0][-1]
    if width == 1024:
        raise UnsupportedModelError("an SD 2.x embedding (width 1024); only SD 1.5 and SDXL run here")
    if width == 768:
        return ModelFamily.sd15
    family = (metadata or {}).get(FAMILY_METADATA_KEY)
    if family in (ModelFamily.sd15.value, ModelFamily.sdxl.value):
        return ModelFamily(family)
    return ModelFamily.sd15  # one CLIP-L vector of another width: a small SD 1.5-layout model


def vectors_of(state: dict[str, Any]) -> dict[str, Any]:
    """The tensors an embedding file holds, flattened from A1111's ``.pt`` layout when needed."""
    if "string_to_param" in state:
        return {"emb_params": next(iter(state["string_to_param"].values()))}
    return {k: v for k, v in state.items() if hasattr(v, "shape")}
