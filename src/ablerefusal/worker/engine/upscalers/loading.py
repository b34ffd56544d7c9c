"""Recognise an ESRGAN-family upscaler file from its tensor names and shapes, and load it into ``RRDBNet``.

Layouts A1111 users have (checked against BasicSR's ``rrdbnet_arch.py``, the original ESRGAN
``RRDBNet_arch`` / A1111's ``esrgan_model_arch.py``, and spandrel's ESRGAN loader):

- **new** (Real-ESRGAN, BasicSR; RealESRGAN_x4plus, 4x-UltraSharp): ``conv_first``, ``body.N.rdbM.convK``,
  ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``. Real-ESRGAN's ``.pth`` files wrap
  this in ``params_ema`` (or ``params``).
- **BSRGAN / RealSR**: the same with older names: ``RRDB_trunk.N.RDBM.convK``, ``trunk_conv``, ``upconvN``,
  ``HRconv``.
- **old** (original ESRGAN, most community ``4x_*.pth``): one flattened ``nn.Sequential`` named ``model``:
  ``model.0`` first conv; ``model.1.sub.N.RDBM.convK.0`` the trunk (``.0``: each conv sat in its own
  Sequential) and ``model.1.sub.<num_block>`` the trunk's last conv; then per x2 stage
  [Upsample, Conv, LeakyReLU] (convs at ``model.3``, ``model.6``, …); then HR conv, LeakyReLU, last conv.

Scale, widths and depth come from the shapes: ``num_feat`` is ``conv_first``'s output channels,
``num_grow_ch`` the first dense conv's, ``num_block`` the number of trunk blocks, the upsample stages the
number of ``conv_upN``; an input of 4x or 16x the output channels means Real-ESRGAN's pixel-unshuffle input
(x2 and x1 models).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablerefusal.worker.engine.detection import UnsupportedModelError
from ablerefusal.worker.engine.upscalers.spec import RRDBSpec

if TYPE_CHECKING:
    from ablerefusal.worker.engine.upscalers.rrdbnet import RRDBNet

_OLD_TRUNK = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_SEQ = re.compile(r"^model\.(\d+)\.(weight|bias)$")
_BSRGAN_TRUNK = re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$")
_NEW_BLOCK = re.compile(r"^body\.(\d+)\.")
_NEW_UP = re.compile(r"^conv_up(\d+)\.weight$")
_BSRGAN_RENAMES = {"trunk_conv.": "conv_body.", "HRconv.": "conv_hr."}


def unwrap(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """The tensors of a Real-ESRGAN training save (``params_ema`` preferred, as Real-ESRGAN's inference does)."""
    for key in ("params_ema", "params"):
        inner = state.get(key)
        if isinstance(inner, Mapping):
            return inner
    return state


def to_new_names(state: Mapping[str, Any]) -> dict[str, Any]:
    """Any supported layout in BasicSR's names (tensors are not copied). Raises UnsupportedModelError for
    files that are not an RRDBNet (SwinIR, DAT, …: other architectures spandrel knows and we do not)."""
    state = unwrap(state)
    keys = set(state)
    if "conv_first.weight" in keys and "body.0.rdb1.conv1.weight" in keys:
        return dict(state)
    if "conv_first.weight" in keys and "RRDB_trunk.0.RDB1.conv1.weight" in keys:
        return _from_bsrgan(state)
    if "model.0.weight" in keys and "model.1.sub.0.RDB1.conv1.0.weight" in keys:
        return _from_old(state)
    if any(".conv1x1." in k for k in keys):
        raise UnsupportedModelError("ESRGAN+ (conv1x1 blocks) is not supported; only plain ESRGAN / Real-ESRGAN")
    raise UnsupportedModelError(
        "not an ESRGAN / Real-ESRGAN (RRDBNet) upscaler: no conv_first + body.0.rdb1 or model.0 + model.1.sub tensors"
    )


def _from_bsrgan(state: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in state.items():
        if m := _BSRGAN_TRUNK.match(key):
            block, rdb, conv, kind = m.groups()
            out[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
            continue
        for old, new in _BSRGAN_RENAMES.items():
            if key.startswith(old):
                key = new + key.removeprefix(old)
        out[re.sub(r"^upconv(\d+)\.", r"conv_up\1.", key)] = value
    return out


def _from_old(state: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    top: dict[int, dict[str, Any]] = {}
    blocks = set()
    for key, value in state.items():
        if m := _OLD_TRUNK.match(key):
            block, rdb, conv, kind = m.groups()
            blocks.add(int(block))
            out[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif m := _OLD_SEQ.match(key):
            top.setdefault(int(m.group(1)), {})[m.group(2)] = value
    num_block = max(blocks) + 1
    for kind in ("weight", "bias"):
        tail = state.get(f"model.1.sub.{num_block}.{kind}")
        if tail is None:
            raise UnsupportedModelError(f"old-format ESRGAN without its trunk conv model.1.sub.{num_block}.{kind}")
        out[f"conv_body.{kind}"] = tail
    # After model.0 (first conv) and model.1 (trunk): 3 modules per x2 stage, then HR conv, act, last conv.
    last = max(top)
    num_upsample, rest = divmod(last + 1 - 5, 3)
    if rest or num_upsample < 0 or 0 not in top or last - 2 not in top:
        raise UnsupportedModelError(f"old-format ESRGAN with an unexpected layer sequence (last index {last})")
    names = {0: "conv_first", last - 2: "conv_hr", last: "conv_last"}
    names |= {3 + 3 * n: f"conv_up{n + 1}" for n in range(num_upsample)}
    for index, params in top.items():
        if index not in names:
            raise UnsupportedModelError(f"old-format ESRGAN with unexpected weights at model.{index}")
        for kind, value in params.items():
            out[f"{names[index]}.{kind}"] = value
    return out


def spec_from_shapes(shapes: Mapping[str, Sequence[int]]) -> RRDBSpec:
    """The network a state dict (in BasicSR's names) describes; used on safetensors headers at scan time too."""
    first = shapes["conv_first.weight"]
    out_ch = shapes["conv_last.weight"][0]
    in_ch = first[1]
    unshuffle = 1
    for factor in (2, 4):
        if in_ch == out_ch * factor * factor:
            unshuffle, in_ch = factor, out_ch
    blocks = {int(m.group(1)) for k in shapes if (m := _NEW_BLOCK.match(k))}
    ups = sorted(int(m.group(1)) for k in shapes if (m := _NEW_UP.match(k)))
    if ups != list(range(1, len(ups) + 1)):
        raise UnsupportedModelError(f"upsample convs {ups} are not conv_up1..conv_upN")
    spec = RRDBSpec(
        num_feat=first[0],
        num_block=max(blocks) + 1,
        num_grow_ch=shapes["body.0.rdb1.conv1.weight"][0],
        num_upsample=len(ups),
        unshuffle=unshuffle,
        in_ch=in_ch,
        out_ch=out_ch,
    )
    if spec.scale not in (1, 2, 4, 8):
        raise UnsupportedModelError(f"scale x{2**spec.num_upsample}/{unshuffle} is not 1, 2, 4 or 8")
    return spec


def recognise_shapes(shapes: Mapping[str, Sequence[int]]) -> RRDBSpec:
    """The spec of a file from its tensor shapes alone (no tensor is read): what the registry's scan uses."""
    return spec_from_shapes(to_new_names(shapes))


def build(state: Mapping[str, Any]) -> RRDBNet:
    """An ``RRDBNet`` with the state's weights (strict: a missing or extra tensor is an error, not a guess)."""
    from ablerefusal.worker.engine.upscalers.rrdbnet import RRDBNet

    new = to_new_names(state)
    model = RRDBNet(spec_from_shapes({k: tuple(v.shape) for k, v in new.items()}))
    try:
        model.load_state_dict(new, strict=True)
    except RuntimeError as exc:
        raise UnsupportedModelError(f"RRDBNet weights do not fit: {exc}") from exc
    return model.eval().requires_grad_(False)


def load_file(path: Path, allow_pickle: bool) -> RRDBNet:
    """The network in ``path``: ``.safetensors`` always; a pickle only when allowed, and then only with
    torch's restricted unpickler (``weights_only``: no code in the file runs)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file as load_safetensors

        return build(load_safetensors(str(path)))
    if not allow_pickle:
        raise UnsupportedModelError(
            f"{path.name}: pickle files can run code when loaded and are refused; convert it to .safetensors "
            "or start the worker with --allow-pickle"
        )
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise UnsupportedModelError(f"{path.name}: not a tensor dictionary")
    return build(state)
