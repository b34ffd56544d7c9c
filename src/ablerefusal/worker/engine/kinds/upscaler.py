"""Upscaler files: ESRGAN-family (RRDBNet) weights in Real-ESRGAN / BasicSR, BSRGAN or original-ESRGAN names,
recognised from tensor names and shapes alone (``engine.upscalers.loading`` knows the layouts).

An upscaler works on pixels, so it fits every model family; ``ModelInfo`` requires a family, and the listing
reports sd15 for all of them (the hires fix never checks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ablerefusal.worker.engine.upscalers.loading import recognise_shapes
from ablerefusal.worker.engine.upscalers.rrdbnet import RRDBSpec


def recognise_upscaler(shapes: Mapping[str, Sequence[int]]) -> RRDBSpec:
    """The network a file holds; raises UnsupportedModelError (with the reason) for anything else."""
    return recognise_shapes(shapes)
