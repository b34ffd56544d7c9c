"""ControlNet on the worker: models on disk (``models``), preprocessors (``preprocess``), a call's units
(``units``: checks, control images, infotext) and the ControlNet pipeline derived from the cached one
(``pipeline``). Only ``models``, ``preprocess`` and ``units`` are imported before a call runs (no diffusers)."""
