"""ESRGAN-family model upscalers for the hires fix: files under ``upscalers/`` (or an A1111 install's
``models/ESRGAN``), listed by the adapter registry as kind ``upscaler`` (``engine.kinds``) and loaded here.

``spec`` says what a file's shapes describe, ``rrdbnet`` is the network, ``loading`` recognises and converts
the file layouts, ``tiling`` runs a model over a large image tile by tile, ``run`` upscales an image to a
target size and caches the loaded model. Only ``rrdbnet``, ``tiling`` and ``run`` import torch.
"""
