"""Generation modes beyond plain text-to-image: img2img, inpaint, outpaint and the hires fix.

txt2img stays in ``runner``; it prepares rows, scheduler, generators and prompt embeddings, then hands a
``Stage`` here for any other mode. Every mode's pipeline is derived from the cached text-to-image one with
diffusers' ``from_pipe`` (``derived``): the same modules, so no weights are loaded twice.
"""

from __future__ import annotations

from ablerefusal.worker.engine.modes.stage import Stage, run_mode

__all__ = ["Stage", "run_mode"]
