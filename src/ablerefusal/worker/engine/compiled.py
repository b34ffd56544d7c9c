"""Compiled mode: the UNet compiled (torch.compile, CUDA graphs via ``reduce-overhead``) per warm shape.

Opt-in (``compile``). A background thread compiles and warms each configured ``model:WxH:bN`` shape while
the worker serves calls eagerly; a call uses the compiled UNet only once its exact shape is warm, so the
worker never stalls on a compile. On CUDA the UNet also goes channels_last with fused QKV projections
(both apply to the shared eager module too: same math, faster kernels). Compiled graphs are specialised to
the shape, which is why only exact matches use them (with CFG the UNet batch is twice the image count).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch

from ablerefusal.protocol import GenerateCall, ModelFamily
from ablerefusal.worker.settings import parse_shape

log = logging.getLogger(__name__)

Shape = tuple[str, int, int, int]


class CompiledUnets:
    def __init__(self, service: Any, shapes: list[str], backend: str = "inductor", mode: str | None = "reduce-overhead") -> None:
        self.service = service
        self.shapes: list[Shape] = [parse_shape(s) for s in shapes]
        self.backend = backend
        self.mode = mode if backend == "inductor" else None
        self._warm: dict[Shape, Any] = {}
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._warm_all, name="ablerefusal-compile", daemon=True)
        self.errors: dict[str, str] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def warm_shapes(self) -> list[str]:
        with self._lock:
            return [f"{m}:{w}x{h}:b{b}" for (m, w, h, b) in self._warm]

    def unet_for(self, model_id: str, call: GenerateCall) -> Any | None:
        """The compiled UNet when this call's exact shape is warm, else None (eager)."""
        if call.cfg_scale <= 1.0:
            return None
        n_images = sum(len(i.seeds) for i in call.items)
        with self._lock:
            return self._warm.get((model_id, call.width, call.height, n_images))

    def _warm_all(self) -> None:
        for shape in self.shapes:
            if self._stop.is_set():
                return
            label = "{}:{}x{}:b{}".format(*shape)
            try:
                compiled = self._warm_one(shape)
            except Exception as exc:  # a shape that cannot compile stays eager; the worker keeps serving
                self.errors[label] = str(exc)
                log.exception("compiling %s failed; calls of that shape stay eager", label)
                continue
            with self._lock:
                self._warm[shape] = compiled
            log.info("compiled shape %s is warm", label)

    def _warm_one(self, shape: Shape) -> Any:
        model_id, width, height, batch = shape
        service = self.service
        entry = service.registry.get(model_id)
        # Loading goes through the generation thread, the only user of the cache.
        resident, _ = service._gpu.submit(service.cache.get, entry).result()
        pipe, device = resident.pipe, service.device
        compiled = self._compiled.get(model_id)
        if compiled is None:
            if device.is_cuda:
                pipe.unet.to(memory_format=torch.channels_last)
                pipe.unet.fuse_qkv_projections()
            compiled = torch.compile(pipe.unet, mode=self.mode, backend=self.backend, fullgraph=False)
            self._compiled[model_id] = compiled
        rows = 2 * batch  # classifier-free guidance runs the negative and positive halves together
        cfg = pipe.unet.config
        latents = torch.randn(rows, cfg.in_channels, height // 8, width // 8, device=device.device, dtype=device.dtype)
        context = torch.randn(rows, 77, cfg.cross_attention_dim, device=device.device, dtype=device.dtype)
        extra: dict[str, Any] = {}
        if entry.family is ModelFamily.sdxl:
            text_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
            extra["added_cond_kwargs"] = {
                "text_embeds": torch.randn(rows, text_dim, device=device.device, dtype=device.dtype),
                "time_ids": torch.tensor([[height, width, 0, 0, height, width]] * rows, device=device.device, dtype=device.dtype),
            }
        stream = torch.cuda.Stream(device.device) if device.is_cuda else None
        with torch.inference_mode():
            for t in (999, 500, 1):  # reduce-overhead records its CUDA graph after the first warm runs
                if stream is not None:
                    with torch.cuda.stream(stream):
                        compiled(latents, torch.tensor(t, device=device.device), context, return_dict=False, **extra)
                    stream.synchronize()
                else:
                    compiled(latents, torch.tensor(t, device=device.device), context, return_dict=False, **extra)
        return compiled
