"""Textual-inversion embeddings: A1111's ``emb_params`` / ``string_to_param`` (SD 1.5), the SDXL pair
``clip_l`` + ``clip_g``, and diffusers' ``{token: vector}`` files. The vector width says the family: 768 is
SD 1.5 (CLIP-L), 1024 SD 2.x (refused); an SDXL file has both encoders' vectors.
"""

from __future__ import annotations

from typing import Any

from ablerefusal.protocol import EmbeddingFacts, ModelFamily
from ablerefusal.worker.engine.detection import FAMILY_METADATA_KEY, UnsupportedModelError

SDXL_KEYS = ("clip_l", "clip_g")
# What A1111's trainer records next to the vectors in its ``.pt`` files (``Embedding.save``); read from a
# safetensors file's metadata too, where a converter that keeps them puts them (A1111 itself only reads .pt).
RECORDED_KEYS = ("step", "sd_checkpoint", "sd_checkpoint_name")


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


def _step(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():  # safetensors metadata values are strings
        return int(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def embedding_facts(shapes: dict[str, list[int]], recorded: dict[str, Any] | None = None) -> EmbeddingFacts:
    """Vectors and width as A1111's ``EmbeddingDatabase.load_from_file`` counts them (an SDXL file: clip_g's
    vectors, clip_l + clip_g widths; a one-dimensional vector is one token), and the training record
    (``recorded``: a ``.pt`` file's top-level values or a safetensors file's metadata; wrong types are
    ignored, as unknown). ``shapes`` are those :func:`recognise_embedding` accepted."""
    if any(not 1 <= len(s) <= 2 for s in shapes.values()):
        raise UnsupportedModelError("not a textual-inversion embedding: vectors must be 1- or 2-dimensional")
    if all(k in shapes for k in SDXL_KEYS):
        clip_l, clip_g = shapes["clip_l"], shapes["clip_g"]
        vectors, width = (clip_g[0] if len(clip_g) == 2 else 1), clip_l[-1] + clip_g[-1]
    else:
        (shape,) = shapes.values()
        vectors, width = (shape[0] if len(shape) == 2 else 1), shape[-1]
    recorded = recorded or {}
    return EmbeddingFacts(
        vectors=vectors,
        shape=width,
        step=_step(recorded.get("step")),
        sd_checkpoint=_text(recorded.get("sd_checkpoint")),
        sd_checkpoint_name=_text(recorded.get("sd_checkpoint_name")),
    )
