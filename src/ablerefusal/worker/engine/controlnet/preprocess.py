"""ControlNet preprocessors and the fitting of a control map to the call's size, as sd-webui-controlnet does.

``none`` and ``canny`` (OpenCV) always run. The annotators of ``controlnet-aux`` (HED, MLSD, depth, OpenPose,
line art …) are listed too, but available only when the package imports and their weights are on disk under
``<models_dir>/controlnet/annotators/`` (the layout of the ``lllyasviel/Annotators`` repository, e.g.
``annotators/ControlNetHED.pth``): nothing is ever downloaded. Their weights are pickles, so they also need the
worker's pickle opt-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ablerefusal.protocol import PreprocessorInfo, PreprocessorSlider, ResizeMode
from ablerefusal.worker.engine.errors import InvalidRequestError

ANNOTATORS_DIR = Path("controlnet") / "annotators"


@dataclass(frozen=True)
class AuxAnnotator:
    """A controlnet-aux detector class and the weight files it loads from the annotators folder."""

    module: str  # controlnet_aux submodule
    cls: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Preprocessor:
    id: str
    name: str
    threshold_a: PreprocessorSlider | None = None
    threshold_b: PreprocessorSlider | None = None
    aux: AuxAnnotator | None = None  # None: built in


_RES = PreprocessorSlider(name="Resolution", min=64, max=2048, value=512, step=8)

PREPROCESSORS: dict[str, Preprocessor] = {
    p.id: p
    for p in (
        Preprocessor("none", "None"),
        Preprocessor(
            "canny",
            "Canny",
            PreprocessorSlider(name="Canny Low Threshold", min=1, max=255, value=100),
            PreprocessorSlider(name="Canny High Threshold", min=1, max=255, value=200),
        ),
        Preprocessor("invert", "Invert (from white bg & black line)"),
        Preprocessor("softedge_hed", "SoftEdge (HED)", aux=AuxAnnotator("hed", "HEDdetector", ("ControlNetHED.pth",))),
        Preprocessor(
            "mlsd",
            "M-LSD",
            PreprocessorSlider(name="MLSD Value Threshold", min=0.01, max=2.0, value=0.1, step=0.01),
            PreprocessorSlider(name="MLSD Distance Threshold", min=0.01, max=20.0, value=0.1, step=0.01),
            aux=AuxAnnotator("mlsd", "MLSDdetector", ("mlsd_large_512_fp32.pth",)),
        ),
        Preprocessor(
            "depth_midas",
            "Depth (MiDaS)",
            aux=AuxAnnotator("midas", "MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",)),
        ),
        Preprocessor(
            "openpose",
            "OpenPose",
            aux=AuxAnnotator(
                "open_pose", "OpenposeDetector", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")
            ),
        ),
        Preprocessor(
            "lineart_realistic",
            "Line art (realistic)",
            aux=AuxAnnotator("lineart", "LineartDetector", ("sk_model.pth", "sk_model2.pth")),
        ),
        Preprocessor(
            "lineart_anime",
            "Line art (anime)",
            aux=AuxAnnotator("lineart_anime", "LineartAnimeDetector", ("netG.pth",)),
        ),
        Preprocessor("normal_bae", "Normal (BAE)", aux=AuxAnnotator("normalbae", "NormalBaeDetector", ("scannet.pt",))),
        Preprocessor(
            "softedge_pidinet",
            "SoftEdge (PiDiNet)",
            aux=AuxAnnotator("pidi", "PidiNetDetector", ("table5_pidinet.pth",)),
        ),
    )
}


def _aux_import_error(aux: AuxAnnotator) -> str | None:
    try:
        importlib.import_module(f"controlnet_aux.{aux.module}")
    except Exception as exc:  # ImportError, or a broken dependency (torchvision built for another torch)
        return f"controlnet-aux is not importable here ({type(exc).__name__}: {exc})"
    return None


def availability(pre: Preprocessor, models_dir: Path, allow_pickle: bool) -> str | None:
    """Why ``pre`` cannot run on this worker, or None when it can."""
    if pre.aux is None:
        return None
    folder = models_dir / ANNOTATORS_DIR
    missing = [f for f in pre.aux.files if not (folder / f).is_file()]
    if missing:
        return f"weights not on disk: {', '.join(str(ANNOTATORS_DIR / f) for f in missing)} under the models dir"
    if not allow_pickle:
        return "its weights are pickle files: start the worker with --allow-pickle to use them"
    return _aux_import_error(pre.aux)


def list_preprocessors(models_dir: Path, allow_pickle: bool) -> list[PreprocessorInfo]:
    out = []
    for pre in PREPROCESSORS.values():
        reason = availability(pre, models_dir, allow_pickle)
        out.append(
            PreprocessorInfo(
                id=pre.id,
                name=pre.name,
                available=reason is None,
                reason=reason,
                threshold_a=pre.threshold_a,
                threshold_b=pre.threshold_b,
            )
        )
    return out


def check_preprocessor(pre_id: str, models_dir: Path, allow_pickle: bool, field: str) -> Preprocessor:
    pre = PREPROCESSORS.get(pre_id)
    if pre is None:
        raise InvalidRequestError(
            f"{field}: unknown preprocessor {pre_id!r}", field=field, available=list(PREPROCESSORS)
        )
    reason = availability(pre, models_dir, allow_pickle)
    if reason is not None:
        raise InvalidRequestError(f"{field}: preprocessor {pre_id!r} is not available: {reason}", field=field)
    return pre


# ---- sd-webui-controlnet's helpers (annotator/util.py), for pixels as it makes them ---------------------------
def hwc3(x: np.ndarray) -> np.ndarray:
    """Grey, RGB or RGBA (over white) as 3-channel uint8, as A1111's HWC3."""
    if x.ndim == 2:
        x = x[:, :, None]
    channels = x.shape[2]
    if channels == 3:
        return x
    if channels == 1:
        return np.concatenate([x, x, x], axis=2)
    color = x[:, :, 0:3].astype(np.float32)
    alpha = x[:, :, 3:4].astype(np.float32) / 255.0
    return (color * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)


def _pad64(x: int) -> int:
    return int(np.ceil(float(x) / 64.0) * 64 - x)


def resize_image_with_pad(image: np.ndarray, resolution: int) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Scale so the short side is ``resolution``, pad to a multiple of 64 by repeating edges; and the function
    that removes that padding again."""
    import cv2

    img = hwc3(image)
    h_raw, w_raw = img.shape[:2]
    k = float(resolution) / float(min(h_raw, w_raw))
    interpolation = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    h_target, w_target = int(np.round(h_raw * k)), int(np.round(w_raw * k))
    img = cv2.resize(img, (w_target, h_target), interpolation=interpolation)
    padded = np.pad(img, [[0, _pad64(h_target)], [0, _pad64(w_target)], [0, 0]], mode="edge")

    def remove_pad(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x[:h_target, :w_target].copy())

    return np.ascontiguousarray(padded), remove_pad


def canny(image: np.ndarray, resolution: int, low: float, high: float) -> np.ndarray:
    import cv2

    img, remove_pad = resize_image_with_pad(image, resolution)
    return hwc3(remove_pad(cv2.Canny(img, low, high)))


def pixel_perfect_resolution(image: np.ndarray, width: int, height: int, mode: ResizeMode) -> int:
    """The processor resolution that makes the map come out at the call's size (A1111's Pixel Perfect)."""
    raw_h, raw_w = image.shape[:2]
    k0, k1 = height / raw_h, width / raw_w
    k = min(k0, k1) if mode is ResizeMode.fill else max(k0, k1)
    return int(np.round(k * min(raw_h, raw_w)))


def _threshold(value: float | None, slider: PreprocessorSlider | None) -> float:
    # A1111 clients send -1 for "the default".
    assert slider is not None
    return slider.value if value is None or value < 0 else value


def run_preprocessor(
    pre: Preprocessor,
    image: Image.Image,
    resolution: int,
    threshold_a: float | None,
    threshold_b: float | None,
    models_dir: Path,
) -> np.ndarray:
    """The control map (H x W x 3 uint8) of ``image``."""
    pixels = hwc3(np.asarray(image.convert("RGBA") if image.mode in ("RGBA", "LA", "P") else image.convert("RGB")))
    if pre.id == "none":
        return pixels
    if pre.id == "invert":
        return 255 - pixels
    if pre.id == "canny":
        low, high = _threshold(threshold_a, pre.threshold_a), _threshold(threshold_b, pre.threshold_b)
        return canny(pixels, resolution, low, high)
    assert pre.aux is not None
    detector = _aux_detector(pre.aux, models_dir)
    kwargs: dict[str, Any] = {"detect_resolution": resolution, "image_resolution": resolution, "output_type": "np"}
    if pre.id == "mlsd":
        kwargs |= {"thr_v": _threshold(threshold_a, pre.threshold_a), "thr_d": _threshold(threshold_b, pre.threshold_b)}
    return hwc3(np.asarray(detector(pixels, **kwargs)))


_detectors: dict[str, Any] = {}


def _aux_detector(aux: AuxAnnotator, models_dir: Path) -> Any:
    """A controlnet-aux detector loaded from the local annotators folder (``from_pretrained`` of a local path)."""
    if aux.cls not in _detectors:
        module = importlib.import_module(f"controlnet_aux.{aux.module}")
        cls = getattr(module, aux.cls)
        _detectors[aux.cls] = cls.from_pretrained(str(models_dir / ANNOTATORS_DIR))
    return _detectors[aux.cls]


# ---- fitting a control map to the call's size (sd-webui-controlnet's detectmap_proc) -------------------------
def _high_quality_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize as A1111's ControlNet does: nearest for maps of few colours (segmentation), Otsu-thresholded for
    binary maps (edges), else area when shrinking and cubic when growing."""
    import cv2

    if (x.shape[1], x.shape[0]) == size:
        return x
    smaller = size[0] * size[1] < x.shape[0] * x.shape[1]
    # Distinct colours, counted on packed RGB (np.unique over rows is ~50x slower on a 512x512 map).
    packed = (x[..., 0].astype(np.uint32) << 16) | (x[..., 1].astype(np.uint32) << 8) | x[..., 2]
    colors = len(np.unique(packed))
    binary = colors == 2 and x.min() < 16 and x.max() > 240
    if 2 < colors < 200:
        interpolation = cv2.INTER_NEAREST
    elif smaller:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_CUBIC
    y = cv2.resize(x, size, interpolation=interpolation)
    if binary:
        grey = np.mean(y.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
        _, grey = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        y = np.stack([grey] * 3, axis=2)
    return y


def fit_control_map(detected: np.ndarray, width: int, height: int, mode: ResizeMode) -> np.ndarray:
    """Just Resize (stretch), Crop and Resize (cover, centre crop) or Resize and Fill (fit inside, the rest in
    the median colour of the map's border)."""
    if mode is ResizeMode.resize:
        return _high_quality_resize(detected, (width, height))
    old_h, old_w = detected.shape[:2]
    k0, k1 = height / old_h, width / old_w
    if mode is ResizeMode.fill:
        k = min(k0, k1)
        borders = np.concatenate([detected[0], detected[-1], detected[:, 0], detected[:, -1]], axis=0)
        color = np.median(borders, axis=0).astype(detected.dtype)
        out = np.tile(color[None, None], [height, width, 1])
        fitted = _high_quality_resize(detected, (int(np.round(old_w * k)), int(np.round(old_h * k))))
        new_h, new_w = fitted.shape[:2]
        top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
        out[top : top + new_h, left : left + new_w] = fitted
        return out
    k = max(k0, k1)
    fitted = _high_quality_resize(detected, (int(np.round(old_w * k)), int(np.round(old_h * k))))
    new_h, new_w = fitted.shape[:2]
    top, left = max(0, (new_h - height) // 2), max(0, (new_w - width) // 2)
    return np.ascontiguousarray(fitted[top : top + height, left : left + width])
