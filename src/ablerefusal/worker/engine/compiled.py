"""Compiled mode: the UNet compiled (torch.compile, CUDA graphs via ``reduce-overhead``) per warm shape.

Opt-in (``compile``). A dedicated compile thread compiles and warms each configured ``model:WxH:bN`` shape
while the generation thread keeps serving calls eagerly, so the worker never stalls on a compile. CUDA graph
trees live in thread-local state, so a compiled UNet must run on the thread that captured it: once a shape
is warm (and no compile is in progress), calls of exactly that shape run on the compile thread; every other
call runs eagerly on the generation thread. The device lock still admits one call at a time.

On CUDA the UNet also goes channels_last with fused QKV projections, applied on the generation thread
between calls (they change the shared eager module too: same math, faster kernels). Compiled graphs are
specialised to the shape, hence exact matches only (with CFG the UNet batch is twice the image count).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from ablerefusal.protocol import GenerateCall, ModelFamily
from ablerefusal.worker.engine.devices import DeviceInfo
from ablerefusal.worker.engine.quantize import qkv_fused
from ablerefusal.worker.engine.runner import is_guided
from ablerefusal.worker.settings import parse_shape

log = logging.getLogger(__name__)

Shape = tuple[str, int, int, int]
T = TypeVar("T")


class CompiledUnets:
    def __init__(
        self,
        registry: Any,
        load: Callable[[Any], Any],
        device: DeviceInfo,
        shapes: list[str],
        backend: str = "inductor",
        mode: str | None = "reduce-overhead",
        exclusive: Callable[[Callable[[], Any]], Any] = lambda fn: fn(),
    ) -> None:
        """``load(entry)`` returns the resident pipeline; ``exclusive(fn)`` runs ``fn`` on the generation
        thread (between calls), where the shared eager UNet may be changed safely."""
        self.registry = registry
        self.load = load
        self.device = device
        self.exclusive = exclusive
        self.shapes: list[Shape] = [parse_shape(s) for s in shapes]
        self.backend = backend
        self.mode = mode if backend == "inductor" else None
        self._warm: dict[Shape, Any] = {}
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._pending = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ablerefusal-compiled")
        self._futures: list[Future[None]] = []
        self.errors: dict[str, str] = {}

    def start(self) -> None:
        with self._lock:
            self._pending += len(self.shapes)
        self._futures = [self._executor.submit(self._warm_shape, shape) for shape in self.shapes]

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def join(self, timeout: float | None = None) -> None:
        for future in self._futures:
            future.exception(timeout)

    def run(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn`` on the compile thread, where the warm CUDA graphs live."""
        return self._executor.submit(fn, *args)

    def warm_shapes(self) -> list[str]:
        with self._lock:
            return [f"{m}:{w}x{h}:b{b}" for (m, w, h, b) in self._warm]

    def unet_for(self, model_id: str, call: GenerateCall) -> Any | None:
        """The compiled UNet when this call's exact shape is warm and the compile thread is free, else None."""
        if not is_guided(call):
            return None  # warmed with the CFG batch (twice the images); unguided calls run eagerly
        n_images = sum(len(i.seeds) for i in call.items)
        with self._lock:
            if self._pending:
                return None  # the compile thread is busy compiling: eager now beats waiting for it
            return self._warm.get((model_id, call.width, call.height, n_images))

    def _warm_shape(self, shape: Shape) -> None:
        label = "{}:{}x{}:b{}".format(*shape)
        try:
            compiled = self._warm_one(shape)
            with self._lock:
                self._warm[shape] = compiled
            log.info("compiled shape %s is warm", label)
        except Exception as exc:  # a shape that cannot compile stays eager; the worker keeps serving
            self.errors[label] = str(exc)
            log.exception("compiling %s failed; calls of that shape stay eager", label)
        finally:
            with self._lock:
                self._pending -= 1

    def _prepare(self, pipe: Any) -> None:
        if self.device.is_cuda:
            pipe.unet.to(memory_format=torch.channels_last)
            if not qkv_fused(pipe.unet):  # a quantized UNet was fused before quantizing (quantize.py)
                pipe.unet.fuse_qkv_projections()

    def _warm_one(self, shape: Shape) -> Any:
        model_id, width, height, batch = shape
        entry = self.registry.get(model_id)
        resident = self.load(entry)
        pipe, device = resident.pipe, self.device
        compiled = self._compiled.get(model_id)
        if compiled is None:
            self.exclusive(lambda: self._prepare(pipe))
            compiled = torch.compile(pipe.unet, mode=self.mode, backend=self.backend, fullgraph=False)
            self._compiled[model_id] = compiled
        rows = 2 * batch  # classifier-free guidance runs the negative and positive halves together
        cfg = pipe.unet.config
        dev, dt = device.device, device.dtype
        latents = torch.randn(rows, cfg.in_channels, height // 8, width // 8, device=dev, dtype=dt)
        context = torch.randn(rows, 77, cfg.cross_attention_dim, device=dev, dtype=dt)
        extra: dict[str, Any] = {}
        if entry.family is ModelFamily.sdxl:
            text_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
            extra["added_cond_kwargs"] = {
                "text_embeds": torch.randn(rows, text_dim, device=dev, dtype=dt),
                "time_ids": torch.tensor([[height, width, 0, 0, height, width]] * rows, device=dev, dtype=dt),
            }
        with torch.inference_mode():
            for t in (999, 500, 1):  # reduce-overhead records its CUDA graph after the first warm runs
                compiled(latents, torch.tensor(t, device=device.device), context, return_dict=False, **extra)
        if device.is_cuda:
            torch.cuda.synchronize(device.device)
        return compiled
