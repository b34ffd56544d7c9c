"""The worker service: validation, the one-call-at-a-time device lock, the generation thread, PNG encoding.

Threads: one generation thread owns the device (diffusers calls block); a small pool encodes PNGs beside it,
so the device lock is released as soon as the pipeline returns and the next call can start while the last
call's images are still being encoded and streamed. Events reach the HTTP stream through an asyncio queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ablerefusal.protocol import (
    DetectRequest,
    DetectResponse,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    GenerateCall,
    GeneratedEvent,
    GenerationMode,
    ImageEvent,
    ItemCancelledEvent,
    ModelList,
    PreprocessorList,
    StartedEvent,
    Timings,
    WorkerInfo,
)
from ablerefusal.samplers import SAMPLER_IDS, SAMPLERS, Sampler, SamplerError, resolve_sampler, sampler_spec
from ablerefusal.worker.engine.controlnet.models import ControlNetRegistry
from ablerefusal.worker.engine.controlnet.units import check_units
from ablerefusal.worker.engine.errors import (
    BusyError,
    CallCancelledError,
    CallNotFoundError,
    EngineError,
    InvalidRequestError,
    NotReadyError,
)
from ablerefusal.worker.engine.kinds import AdapterKind, AdapterRegistry
from ablerefusal.worker.engine.kinds.resolve import call_loras, resolve
from ablerefusal.worker.engine.registry import ModelEntry, ModelRegistry
from ablerefusal.worker.settings import WorkerSettings

log = logging.getLogger(__name__)


def _package_version(name: str = "ablerefusal") -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


ablerefusal_version = _package_version()
# From the installed metadata, not the modules: /v1/info must not wait for diffusers to import.
LIBRARY_VERSIONS = {
    "ablerefusal": ablerefusal_version,
    **{name: _package_version(name) for name in ("torch", "diffusers", "transformers")},
}

_END = object()  # closes a call's event stream
VAE_CACHE_SIZE = 2  # VAEs kept loaded beside the checkpoints' own
CONTROLNET_CACHE_SIZE = 3  # loaded ControlNets kept (a few hundred MB each at full size in half precision)


@dataclass
class _Timing:
    received: float
    started: float = 0.0
    load_s: float = 0.0
    generate_s: float = 0.0


class WorkerService:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.worker_id = settings.worker_id or f"{socket.gethostname()}:{settings.port}"
        self.registry = ModelRegistry(settings.models_dir, settings.hub_ids, settings.allow_pickle)
        self.controlnets = ControlNetRegistry(settings.models_dir)
        self.adapters = AdapterRegistry(settings.models_dir, settings.allow_pickle)
        self.vae_cache: Any = None  # engine.adapters.vae.VaeCache once the device is known
        self.upscaler_cache: Any = None  # engine.upscalers.run.UpscalerCache once the device is known
        self.controlnet_cache: Any = None  # engine.controlnet.pipeline.ControlNetCache once the device is known
        self.device: Any = None  # DeviceInfo once initialised (typed loosely: devices imports torch)
        self.cache: Any = None
        self.compiler: Any = None
        self.not_ready_reason: str | None = "device initialising"
        self._device_lock = threading.Lock()
        self._calls_lock = threading.Lock()
        self._calls: dict[str, Any] = {}
        self._gpu = ThreadPoolExecutor(1, thread_name_prefix="ablerefusal-gpu")
        self._encoder = ThreadPoolExecutor(settings.encode_threads, thread_name_prefix="ablerefusal-png")

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Scan models and initialise the device in the generation thread; /v1/ready turns on when done."""
        self.registry.scan()
        self.controlnets.scan()
        self._gpu.submit(self._initialise)

    def _initialise(self) -> None:
        from ablerefusal.worker.engine.cache import PipelineCache
        from ablerefusal.worker.engine.devices import resolve_device
        from ablerefusal.worker.engine.loading import load_pipeline
        from ablerefusal.worker.engine.quantize import check_supported

        try:
            self.device = resolve_device(self.settings.device, self.settings.dtype, self.settings.allow_cpu_fallback)
            check_supported(self.settings.quantize, self.device)
            # Compiled mode fuses the UNet's QKV projections on CUDA; quantized weights cannot be fused later.
            fuse_qkv = self.settings.compile and self.device.is_cuda and self.settings.quantize != "none"
            self.cache = PipelineCache(
                self.settings.cache_size,
                self.device,
                lambda entry: load_pipeline(
                    entry, self.device, self.settings.allow_pickle, self.settings.quantize, fuse_qkv
                ),
                offload_idle=self.settings.offload_idle,
            )
            from ablerefusal.worker.engine.controlnet.pipeline import ControlNetCache

            self.controlnet_cache = ControlNetCache(CONTROLNET_CACHE_SIZE, self.device)
            from ablerefusal.worker.engine.adapters.vae import VaeCache

            self.vae_cache = VaeCache(VAE_CACHE_SIZE, self.device.device, self.device.dtype)
            from ablerefusal.worker.engine.upscalers.run import UpscalerCache

            self.upscaler_cache = UpscalerCache(self.device.device, self.device.dtype, self.settings.allow_pickle)
            for model_id in self.settings.preload:
                self.cache.get(self.registry.get(model_id))
            if self.settings.compile:
                from ablerefusal.worker.engine.compiled import CompiledUnets

                self.compiler = CompiledUnets(
                    self.registry,
                    # Loading goes through the generation thread, the only user of the cache.
                    lambda entry: self._gpu.submit(self.cache.get, entry).result()[0],
                    self.device,
                    self.settings.compile_shapes,
                    self.settings.compile_backend,
                    self.settings.compile_mode,
                    exclusive=lambda fn: self._gpu.submit(fn).result(),
                )
                self.compiler.start()
            self.not_ready_reason = None
            log.info("worker ready on %s (%s, %s)", self.device.device, self.device.name, self.device.dtype)
        except Exception as exc:  # the process stays up and reports why it is not ready
            self.not_ready_reason = f"initialisation failed: {exc}"
            log.exception("worker initialisation failed")

    def shutdown(self) -> None:
        with self._calls_lock:
            for control in self._calls.values():
                control.cancelled.set()
        if self.compiler is not None:
            self.compiler.stop()
        self._gpu.shutdown(wait=True, cancel_futures=True)
        self._encoder.shutdown(wait=True, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.not_ready_reason is None

    @property
    def busy(self) -> bool:
        return self._device_lock.locked()

    # ---- reads -----------------------------------------------------------------------------------------
    def models(self, kind: str = "checkpoint") -> ModelList:
        """What ``GET /v1/models?kind=`` lists: checkpoints (default), or adapter files of one kind."""
        if kind == "controlnet":
            return self.controlnet_models()
        if kind != "checkpoint":
            try:
                adapter_kind = AdapterKind(kind)
            except ValueError:
                raise InvalidRequestError(
                    f"kind: {kind!r} is not a model kind; use checkpoint, lora, embedding, vae, upscaler or controlnet",
                    field="kind",
                    available=["checkpoint", *[k.value for k in AdapterKind], "controlnet"],
                ) from None
            return ModelList(models=self.adapters.infos(adapter_kind))
        entries = self.registry.refresh()
        loaded = set(self.cache.loaded_ids()) if self.cache else set()
        return ModelList(models=[e.info(e.id in loaded) for e in entries.values()])

    def info(self) -> WorkerInfo:
        """What /v1/info answers; may call the device (memory figures), so it runs off the event loop."""
        from ablerefusal.worker.engine.devices import memory_figures
        from ablerefusal.worker.engine.modes.inputs import UPSCALERS

        dev = self.device
        return WorkerInfo(
            worker_id=self.worker_id,
            device=str(dev.device) if dev else "initialising",
            device_name=dev.name if dev else "",
            dtype=str(dev.dtype).removeprefix("torch.") if dev else "",
            versions=dict(LIBRARY_VERSIONS),
            loaded_models=self.cache.loaded_ids() if self.cache else [],
            memory=memory_figures(dev) if dev else {},
            samplers=list(SAMPLERS),
            busy=self.busy,
            max_batch_images=self.settings.max_batch_images,
            compiled_shapes=self.compiler.warm_shapes() if self.compiler else [],
            fallback_reason=dev.fallback_reason if dev else None,
            per_item_cfg=True,
            quantize=self.settings.quantize,
            modes=[m.value for m in GenerationMode],
            upscalers=[*UPSCALERS, *sorted(self.adapters.entries(AdapterKind.upscaler))],
        )

    # ---- generation ------------------------------------------------------------------------------------
    def validate(self, call: GenerateCall) -> tuple[ModelEntry, Sampler]:
        """Checks beyond the schema; raises InvalidRequestError / ModelNotFoundError naming the field."""
        try:
            sampler = sampler_spec(resolve_sampler(call.sampler).id)
        except SamplerError as exc:
            raise InvalidRequestError(exc.message, field="sampler", available=list(SAMPLER_IDS)) from exc
        job_ids = [item.job_id for item in call.items]
        if len(set(job_ids)) != len(job_ids):
            raise InvalidRequestError("items: job_id values must be unique within a call", field="items")
        guided = {(call.cfg_scale if item.cfg_scale is None else item.cfg_scale) > 1.0 for item in call.items}
        if len(guided) > 1:
            raise InvalidRequestError(
                "items: cfg_scale must be above 1 for every item of a call or for none (1 turns guidance off, "
                "which changes the whole batch's UNet pass)",
                field="items",
            )
        n_images = sum(len(item.seeds) for item in call.items)
        if n_images > self.settings.max_batch_images:
            raise InvalidRequestError(
                f"items: {n_images} images in one call; this worker takes at most {self.settings.max_batch_images}",
                field="items",
            )
        entry = self.registry.get(call.model)
        if entry.inpainting and call.mode not in (GenerationMode.inpaint, GenerationMode.outpaint):
            raise InvalidRequestError(
                f"mode: {entry.id} is an inpainting model (9-channel UNet); it runs modes inpaint and outpaint only",
                field="mode",
            )
        from ablerefusal.worker.engine.modes.inputs import check_call

        # Decodes the input images: off the event loop, like this whole method.
        check_call(call, self._model_upscalers(call))
        check_units(call, entry.family, self.controlnets, self.settings.models_dir, self.settings.allow_pickle)
        resolve(call, entry, self.adapters)  # LoRAs, VAE and embeddings exist and fit the model's family
        return entry, sampler

    def begin(
        self, call: GenerateCall, checked: tuple[ModelEntry, Sampler] | None = None
    ) -> tuple[str, asyncio.Queue[Any]]:
        """Validate (unless ``checked`` is ``validate``'s answer), take the device, and start the call; returns
        its id and event queue. On the event loop: the queue belongs to it."""
        entry, sampler = checked or self.validate(call)
        if not self.ready:
            raise NotReadyError(f"worker not ready: {self.not_ready_reason}")
        call_id = call.call_id or uuid.uuid4().hex
        with self._calls_lock:
            if call_id in self._calls:
                raise InvalidRequestError(f"call_id {call_id!r} is already running", field="call_id")
        if not self._device_lock.acquire(blocking=False):
            raise BusyError("worker is busy with another generation call; retry on another worker or later")
        from ablerefusal.worker.engine.runner import CallControl

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def emit(event: Any) -> None:
            # RuntimeError: the client's loop is gone; nothing left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, event)

        control = CallControl(call_id=call_id, job_ids=[i.job_id for i in call.items], emit=emit)
        with self._calls_lock:
            self._calls[call_id] = control
        timing = _Timing(received=time.perf_counter())
        # A warm compiled shape runs on the compile thread, which owns its CUDA graphs; the rest eagerly here.
        # Compiled UNets serve plain txt2img; other modes run eagerly on pipelines derived from the cached one.
        plain = call.mode is GenerationMode.txt2img and call.hires is None and not call.controlnets
        # LoRA layers change the UNet's modules; a compiled UNet was captured without them.
        plain = plain and not call_loras(call)
        unet = self.compiler.unet_for(entry.id, call) if self.compiler and plain else None
        try:
            if unet is not None:
                self.compiler.run(self._run, control, call, entry, sampler, timing, unet)
            else:
                self._gpu.submit(self._run, control, call, entry, sampler, timing, None)
        except RuntimeError:
            self._device_lock.release()
            self._forget(call_id)
            raise NotReadyError("worker is shutting down") from None
        return call_id, queue

    def cancel(self, call_id: str, job_id: str | None) -> None:
        with self._calls_lock:
            control = self._calls.get(call_id)
        if control is None:
            raise CallNotFoundError(f"no running call {call_id!r}", field="call_id")
        if job_id is None:
            control.cancelled.set()
            return
        if job_id not in control.job_ids:
            raise InvalidRequestError(f"job_id {job_id!r} is not part of call {call_id!r}", field="job_id")
        if job_id not in control.dropped:
            control.dropped.add(job_id)
            control.emit(ItemCancelledEvent(call_id=call_id, job_id=job_id))
        if not control.live_jobs():
            control.cancelled.set()

    def _forget(self, call_id: str) -> None:
        with self._calls_lock:
            self._calls.pop(call_id, None)

    def _finish(self, control: Any, event: Any | None) -> None:
        self._forget(control.call_id)
        if event is not None:
            control.emit(event)
        control.emit(_END)

    def _run(
        self, control: Any, call: GenerateCall, entry: ModelEntry, sampler: Sampler, timing: _Timing, unet: Any
    ) -> None:
        from ablerefusal.worker.engine.devices import is_out_of_memory
        from ablerefusal.worker.engine.runner import MemoryDefaults, generate

        timing.started = time.perf_counter()
        images = None
        try:
            control.emit(
                StartedEvent(
                    call_id=control.call_id, model=entry.id, device=str(self.device.device), job_ids=control.job_ids
                )
            )
            resident, timing.load_s = self.cache.get(entry)
            if control.cancelled.is_set():
                raise CallCancelledError
            t0 = time.perf_counter()
            defaults = MemoryDefaults(
                attention_slicing=self.settings.attention_slicing,
                vae_tiling=self.settings.vae_tiling,
                vae_tiling_min_pixels=self.settings.vae_tiling_min_pixels,
                cpu_offload=self.settings.cpu_offload,
            )
            images = generate(
                resident,
                call,
                sampler,
                control,
                self.device,
                defaults,
                unet=unet,
                hold_dir=self.settings.test_hold_dir,
                controlnets=self._controlnet_inputs(call),
                adapters=self._call_adapters(call, entry, resident),
            )
            timing.generate_s = time.perf_counter() - t0
        except CallCancelledError:
            self._finish(
                control, ErrorEvent(call_id=control.call_id, code=ErrorCode.cancelled, message="call cancelled")
            )
        except EngineError as exc:
            self._finish(control, ErrorEvent(call_id=control.call_id, code=exc.code, message=exc.message))
        except Exception as exc:
            if is_out_of_memory(exc):
                self._release_memory()
                event = ErrorEvent(
                    call_id=control.call_id,
                    code=ErrorCode.out_of_memory,
                    message=f"out of memory: {exc}",
                    retryable=True,
                )
            else:
                log.exception("generation call %s failed", control.call_id)
                event = ErrorEvent(
                    call_id=control.call_id, code=ErrorCode.internal, message=f"{type(exc).__name__}: {exc}"
                )
            self._finish(control, event)
        finally:
            self._device_lock.release()
        if images is not None:
            # Said after the lock is free: a gateway that sends its next call on reading this finds the
            # device idle (no 409), and that call runs while these images are encoded.
            control.emit(GeneratedEvent(call_id=control.call_id, generate_s=timing.generate_s))
            self._encoder.submit(self._encode, control, call, entry, sampler, images, timing)

    def _call_adapters(self, call: GenerateCall, entry: ModelEntry, resident: Any) -> Any:
        """The call's adapters with its VAE and hires upscaler loaded (in the generation thread: the caches are
        its own)."""
        from ablerefusal.worker.engine.adapters import CallAdapters

        found = resolve(call, entry, self.adapters)
        vae = self.vae_cache.get(found.vae, resident.pipe.vae) if found.vae else None
        upscaler = None
        if call.hires is not None and call.hires.upscaler in self._model_upscalers(call):
            found_upscaler = self.adapters.get(AdapterKind.upscaler, call.hires.upscaler, "hires.upscaler")
            upscaler = self.upscaler_cache.get(found_upscaler)
        return CallAdapters(
            loras=found.loras,
            embeddings=found.embeddings,
            vae_entry=found.vae,
            vae=vae,
            clip_skip=call.clip_skip,
            upscaler=upscaler,
        )

    def _model_upscalers(self, call: GenerateCall) -> list[str]:
        """The ids of this worker's upscaler files (scanned only for a hires call); a call naming a refused file
        is told why."""
        if call.hires is None:
            return []
        from ablerefusal.worker.engine.modes.inputs import UPSCALERS

        if call.hires.upscaler in UPSCALERS:
            return []
        reason = self.adapters.refused(AdapterKind.upscaler).get(call.hires.upscaler)
        if reason:
            raise InvalidRequestError(
                f"hires.upscaler: upscaler {call.hires.upscaler!r} was refused: {reason}", field="hires.upscaler"
            )
        return sorted(self.adapters.entries(AdapterKind.upscaler))

    def _controlnet_inputs(self, call: GenerateCall) -> Any:
        """The call's ControlNets loaded (in the generation thread: the cache is its own), or None."""
        if not call.controlnets:
            return None
        from ablerefusal.worker.engine.controlnet.pipeline import ControlNetInputs

        models = [
            self.controlnet_cache.get(self.controlnets.get(u.model, f"controlnets.{n}.model"))
            for n, u in enumerate(call.controlnets)
        ]
        return ControlNetInputs(models=models, models_dir=self.settings.models_dir)

    # ---- ControlNet preprocessors ----------------------------------------------------------------------
    def preprocessors(self) -> PreprocessorList:
        from ablerefusal.worker.engine.controlnet.preprocess import list_preprocessors

        return PreprocessorList(preprocessors=list_preprocessors(self.settings.models_dir, self.settings.allow_pickle))

    def controlnet_models(self) -> ModelList:
        entries = self.controlnets.scan()
        loaded = set(self.controlnet_cache.loaded_ids()) if self.controlnet_cache else set()
        return ModelList(models=[e.info(e.id in loaded) for e in entries.values()])

    def detect(self, request: DetectRequest) -> DetectResponse:
        """Run one preprocessor on one image (CPU work: off the event loop, not under the device lock; an
        annotator that runs on the device shares it like /v1/info's memory figures do)."""
        import io

        from PIL import Image

        from ablerefusal.worker.engine.controlnet.preprocess import check_preprocessor, run_preprocessor
        from ablerefusal.worker.engine.controlnet.units import decode_control_image

        models_dir = self.settings.models_dir
        pre = check_preprocessor(request.preprocessor, models_dir, self.settings.allow_pickle, "preprocessor")
        image = decode_control_image(request.image, "image")
        detected = run_preprocessor(
            pre, image, request.processor_res, request.threshold_a, request.threshold_b, self.settings.models_dir
        )
        buf = io.BytesIO()
        Image.fromarray(detected).save(buf, format="PNG")
        return DetectResponse(
            image=base64.b64encode(buf.getvalue()).decode("ascii"), width=detected.shape[1], height=detected.shape[0]
        )

    def _release_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if self.device is not None and self.device.is_cuda:
            torch.cuda.empty_cache()

    def _encode(
        self, control: Any, call: GenerateCall, entry: ModelEntry, sampler: Sampler, images: list[Any], timing: _Timing
    ) -> None:
        from ablerefusal.worker.engine.controlnet.units import infotext_pairs as controlnet_infotext_pairs
        from ablerefusal.worker.engine.controlnet.units import metadata as controlnet_metadata
        from ablerefusal.worker.engine.images import ImageParams, encode_png, infotext
        from ablerefusal.worker.engine.kinds.infotext import (
            adapter_hash_pairs,
            adapter_metadata,
            clip_skip_pairs,
            vae_pairs,
        )
        from ablerefusal.worker.engine.modes.infotext import infotext_pairs, metadata_fields

        t0 = time.perf_counter()
        try:
            entries = [self.controlnets.get(u.model, f"controlnets.{n}.model") for n, u in enumerate(call.controlnets)]
            controlnet_infotext = controlnet_infotext_pairs(call, entries)
            used = resolve(call, entry, self.adapters)
            for generated in images:
                row = generated.row
                if control.cancelled.is_set():
                    self._finish(
                        control, ErrorEvent(call_id=control.call_id, code=ErrorCode.cancelled, message="call cancelled")
                    )
                    return
                if row.job_id in control.dropped:
                    continue
                params = ImageParams(
                    prompt=row.prompt,
                    negative_prompt=row.negative_prompt,
                    steps=call.steps,
                    sampler_name=sampler.name,
                    cfg_scale=row.cfg_scale,
                    seed=row.seed,
                    # A1111 writes the first pass's size for hires, the canvas for outpainting.
                    width=call.width if call.hires else generated.image.width,
                    height=call.height if call.hires else generated.image.height,
                    model_name=entry.name.removesuffix(".safetensors"),
                    model_hash=entry.sha256,
                    version=f"ablerefusal {ablerefusal_version}",
                    extra=(
                        *vae_pairs(used),
                        *infotext_pairs(call),
                        *clip_skip_pairs(call),
                        *controlnet_infotext,
                        *adapter_hash_pairs(used, row.prompt, row.negative_prompt),
                    ),
                )
                text = infotext(params)
                metadata: dict[str, object] = {
                    "job_id": row.job_id,
                    "index": row.index,
                    "seed": row.seed,
                    "prompt": row.prompt,
                    "negative_prompt": row.negative_prompt,
                    "steps": call.steps,
                    "sampler": sampler.id,
                    "cfg_scale": row.cfg_scale,
                    "width": generated.image.width,
                    "height": generated.image.height,
                    "model": entry.id,
                    "model_family": entry.family.value,
                    "demo": entry.demo,
                    "device": str(self.device.device),
                    "dtype": str(self.device.dtype).removeprefix("torch."),
                    "worker_id": self.worker_id,
                    "call_id": control.call_id,
                    **metadata_fields(call),
                    **controlnet_metadata(call),
                    **adapter_metadata(call, used, row.prompt, row.negative_prompt),
                }
                png = encode_png(generated.image, text, metadata, self.settings.png_compress_level)
                control.emit(
                    ImageEvent(
                        call_id=control.call_id,
                        job_id=row.job_id,
                        index=row.index,
                        seed=row.seed,
                        png_base64=base64.b64encode(png).decode("ascii"),
                        infotext=text,
                        metadata=metadata,
                    )
                )
            now = time.perf_counter()
            timings = Timings(
                queue_s=timing.started - timing.received,
                load_s=timing.load_s,
                generate_s=timing.generate_s,
                encode_s=now - t0,
                total_s=now - timing.received,
            )
            self._finish(control, DoneEvent(call_id=control.call_id, timings=timings))
        except Exception as exc:
            log.exception("encoding call %s failed", control.call_id)
            self._finish(control, ErrorEvent(call_id=control.call_id, code=ErrorCode.internal, message=str(exc)))


def is_end(event: Any) -> bool:
    return event is _END
