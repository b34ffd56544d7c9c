"""Image-to-image and inpainting pipelines made from the cached text-to-image pipeline with ``from_pipe``.

``from_pipe`` builds a new pipeline object around the very same modules (UNet, VAE, text encoders), so a
derived pipeline costs no weights; it is kept beside its base (weakly: when the cache evicts the base, the
derived ones go with it). Memory switches live on the shared modules and apply to both. The scheduler is the
one attribute that is not shared in practice: the runner builds a fresh one per call, handed over each time.
"""

from __future__ import annotations

import threading
import weakref
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    img2img = "img2img"
    inpaint = "inpaint"


_derived: weakref.WeakKeyDictionary[Any, dict[Kind, Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()  # the compile thread and the generation thread may both derive


def derive(base: Any, kind: Kind, scheduler: Any) -> Any:
    """The ``kind`` pipeline sharing ``base``'s modules, with ``scheduler`` set for this call."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

    with _lock:
        per_base = _derived.setdefault(base, {})
        pipe = per_base.get(kind)
        if pipe is None:
            auto = AutoPipelineForImage2Image if kind is Kind.img2img else AutoPipelineForInpainting
            pipe = auto.from_pipe(base)
            pipe.set_progress_bar_config(disable=True)
            per_base[kind] = pipe
    pipe.scheduler = scheduler
    if pipe.vae is not base.vae:  # a call's VAE choice is swapped onto the base (engine.adapters.vae)
        pipe.vae = base.vae
    return pipe
