"""ESRGAN-family upscalers: both file layouts load and scale, the network matches the original ESRGAN's layer
sequence, tiling matches a whole-image pass, the hires fix upscales with a model, and pickles are refused
without running (a pickle whose ``__reduce__`` would create a marker file proves it).

The reference forward pass below is written from the original ESRGAN's flattened ``model.N`` sequence with
``torch.nn.functional`` only, independently of ``engine.upscalers.rrdbnet`` and of the key conversion.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file
from torch.nn import functional as F
from worker_helpers import call_body, images, pixels, run_call, wait_ready

from ablerefusal.testing.tiny_upscalers import TINY_SPEC, tiny_rrdbnet, to_old_names
from ablerefusal.worker.app import create_app
from ablerefusal.worker.engine.detection import UnsupportedModelError
from ablerefusal.worker.engine.kinds import AdapterKind, AdapterRegistry
from ablerefusal.worker.engine.upscalers.loading import build, load_file, recognise_shapes
from ablerefusal.worker.engine.upscalers.tiling import upscale_tensor
from ablerefusal.worker.settings import WorkerSettings

_MAKE = """
import sys
from pathlib import Path
from ablerefusal.testing.tiny import make_tiny
from ablerefusal.testing.tiny_upscalers import make_tiny_upscalers
dest = Path(sys.argv[1])
make_tiny(dest, "sd15", "diffusers")
make_tiny_upscalers(dest)
"""


class _Bomb:
    """Unpickling this creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.fixture(scope="module")
def esrgan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-sd15 plus ``make-tiny --upscaler``'s files, and a pickle bomb named like an upscaler."""
    dest = tmp_path_factory.mktemp("esrgan-models")
    subprocess.run([sys.executable, "-c", _MAKE, str(dest)], check=True, timeout=600, capture_output=True)
    (dest / "upscalers" / "4x-bomb.pth").write_bytes(pickle.dumps({"conv_first.weight": _Bomb(dest / "pwned")}))
    return dest


@pytest.fixture(scope="module")
def esrgan_client(esrgan_dir: Path) -> Iterator[TestClient]:
    settings = WorkerSettings(models_dir=esrgan_dir, device="cpu", worker_id="esrgan-worker")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def _reference_forward(old: dict[str, torch.Tensor], x: torch.Tensor, unshuffle: int = 1) -> torch.Tensor:
    """The original ESRGAN ``RRDB_Net`` over its own ``model.N`` weights: conv, ShortcutBlock(RRDBs + conv),
    [Upsample x2, conv, LeakyReLU] per stage, conv, LeakyReLU, conv."""

    def conv(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.conv2d(x, old[f"{name}.weight"], old[f"{name}.bias"], padding=1)

    def lrelu(x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2)

    def rdb(x: torch.Tensor, prefix: str) -> torch.Tensor:
        feats = [x]
        for n in range(1, 5):
            feats.append(lrelu(conv(torch.cat(feats, 1), f"{prefix}.conv{n}.0")))
        return conv(torch.cat(feats, 1), f"{prefix}.conv5.0") * 0.2 + x

    if unshuffle > 1:
        x = F.pixel_unshuffle(x, unshuffle)
    blocks = 1 + max(int(k.split(".")[3]) for k in old if ".RDB" in k)
    last = max(int(k.split(".")[1]) for k in old)
    fea = conv(x, "model.0")
    trunk = fea
    for b in range(blocks):
        block_in = trunk
        for r in (1, 2, 3):
            trunk = rdb(trunk, f"model.1.sub.{b}.RDB{r}")
        trunk = trunk * 0.2 + block_in
    out = fea + conv(trunk, f"model.1.sub.{blocks}")
    for index in range(3, last - 2, 3):
        out = lrelu(conv(F.interpolate(out, scale_factor=2, mode="nearest"), f"model.{index}"))
    return conv(lrelu(conv(out, f"model.{last - 2}")), f"model.{last}")


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_both_layouts_load_and_match_the_original_esrgan_sequence(tmp_path: Path, scale: int) -> None:
    state = {k: v.contiguous() for k, v in tiny_rrdbnet(scale, seed=scale).state_dict().items()}
    old = to_old_names(state, num_upsample=2)
    save_file(state, str(tmp_path / "new.safetensors"))
    save_file(old, str(tmp_path / "old.safetensors"))
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    unshuffle = {4: 1, 2: 2, 1: 4}[scale]
    expected = _reference_forward(old, x, unshuffle)
    for name in ("new", "old"):
        model = load_file(tmp_path / f"{name}.safetensors", allow_pickle=False)
        spec = model.spec
        assert (spec.num_feat, spec.num_block, spec.num_grow_ch) == tuple(TINY_SPEC.values())
        assert (spec.scale, spec.unshuffle, spec.in_ch) == (scale, unshuffle, 3)
        with torch.inference_mode():
            out = model(x)
        assert out.shape == (1, 3, 24 * scale, 32 * scale)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_real_esrgan_training_saves_and_bsrgan_names_load(tmp_path: Path) -> None:
    """Real-ESRGAN's ``.pth`` wraps the tensors in ``params_ema``; BSRGAN's files use older names."""
    state = {k: v.contiguous() for k, v in tiny_rrdbnet(4).state_dict().items()}
    torch.save({"params_ema": state, "params": {}}, tmp_path / "RealESRGAN_x4plus.pth")
    with pytest.raises(UnsupportedModelError, match="pickle files can run code"):
        load_file(tmp_path / "RealESRGAN_x4plus.pth", allow_pickle=False)
    wrapped = load_file(tmp_path / "RealESRGAN_x4plus.pth", allow_pickle=True)
    renames = [("conv_body.", "trunk_conv."), ("body.", "RRDB_trunk."), (".rdb", ".RDB"), ("conv_up", "upconv")]
    bsrgan = {}
    for key, value in state.items():
        for ours, theirs in [*renames, ("conv_hr.", "HRconv.")]:
            key = key.replace(ours, theirs) if key.startswith(ours) or ours == ".rdb" else key
        bsrgan[key] = value
    assert {"trunk_conv.weight", "RRDB_trunk.0.RDB3.conv5.bias", "upconv2.weight", "HRconv.weight"} <= set(bsrgan)
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(wrapped(x), build(bsrgan)(x))
        torch.testing.assert_close(wrapped(x), build(state)(x))


def test_other_architectures_are_refused_by_shape() -> None:
    with pytest.raises(UnsupportedModelError, match="not an ESRGAN"):
        recognise_shapes({"layers.0.residual_group.blocks.0.attn.qkv.weight": [180, 60]})  # SwinIR-like
    with pytest.raises(UnsupportedModelError, match="ESRGAN\\+"):
        recognise_shapes({"model.0.weight": [64, 3, 3, 3], "model.1.sub.0.RDB1.conv1x1.weight": [64, 64, 1, 1]})


@pytest.mark.parametrize(("scale", "size"), [(4, (70, 53)), (2, (61, 47)), (1, (45, 38))])
def test_tiles_with_enough_context_equal_the_whole_image(scale: int, size: tuple[int, int]) -> None:
    """Tiles smaller than the image, odd sides (padded for the pixel-unshuffle models): with context covering
    the receptive field, tiled equals whole; without context the tile seams differ, so tiling really ran."""
    model = tiny_rrdbnet(scale, seed=3)
    width, height = size
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    whole = upscale_tensor(model, x, tile=0)
    assert whole.shape == (1, 3, height * scale, width * scale)
    tiled = upscale_tensor(model, x, tile=16, overlap=model.spec.receptive_radius)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
    seams = upscale_tensor(model, x, tile=16, overlap=0)
    assert seams.shape == whole.shape and not torch.allclose(seams, whole, atol=1e-3)


def test_listing_info_and_a1111_folder(esrgan_client: TestClient, esrgan_dir: Path) -> None:
    listed = esrgan_client.get("/v1/models", params={"kind": "upscaler"}).json()["models"]
    assert {m["id"]: m["name"] for m in listed} == {
        "tiny-esrgan-old-x4": "tiny-esrgan-old-x4.safetensors",  # from A1111's models/ESRGAN
        "tiny-esrgan-x2": "tiny-esrgan-x2.safetensors",
        "tiny-esrgan-x4": "tiny-esrgan-x4.safetensors",
    }
    assert all(m["kind"] == "upscaler" and len(m["sha256"]) == 64 for m in listed)
    info = esrgan_client.get("/v1/info").json()
    assert info["upscalers"] == [
        "latent",
        "lanczos",
        "nearest",
        "tiny-esrgan-old-x4",
        "tiny-esrgan-x2",
        "tiny-esrgan-x4",
    ]
    assert not (esrgan_dir / "pwned").exists()


@pytest.mark.parametrize(("upscaler", "hires"), [("tiny-esrgan-x4", {"scale": 2}), ("tiny-esrgan-x2", {"width": 96})])
def test_hires_with_a_model_is_the_model_then_lanczos(
    esrgan_client: TestClient, esrgan_dir: Path, upscaler: str, hires: dict[str, Any]
) -> None:
    """With no second-pass step the result is the first pass upscaled, computed here from the file: the x4
    model once (256 px) then Lanczos down to 128; the x2 model once (128) then Lanczos down to 96."""
    body = call_body(items=[{"job_id": "j", "prompt": "a castle", "seeds": [5]}])
    first = pixels(images(run_call(esrgan_client, body))[("j", 0)])
    hires = {**hires, "upscaler": upscaler, "denoising_strength": 0.0}
    event = images(run_call(esrgan_client, {**body, "hires": hires}))[("j", 0)]
    state = load_safetensors(str(esrgan_dir / "upscalers" / f"{upscaler}.safetensors"))
    scale = 4 if upscaler.endswith("x4") else 2
    x = torch.from_numpy(first.copy()).permute(2, 0, 1)[None].float() / 255.0
    old = to_old_names(state, num_upsample=2)
    with torch.inference_mode():
        y = _reference_forward(old, x, unshuffle=4 // scale)
    model_out = (y[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert model_out.shape == (64 * scale, 64 * scale, 3)
    size = (128, 128) if "scale" in hires else (96, 96)
    expected = np.asarray(Image.fromarray(model_out).resize(size, Image.Resampling.LANCZOS))
    plain = np.asarray(Image.fromarray(first).resize(size, Image.Resampling.LANCZOS))
    assert np.abs(expected.astype(int) - plain.astype(int)).max() > 16  # the model, not a resize, made it
    got = pixels(event)
    assert got.shape == (size[1], size[0], 3)
    # The reference's float sums may round a channel value the other way than the worker's net at most by 1.
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert f"Hires upscaler: {upscaler}" in event.infotext, event.infotext


def test_hires_with_a_model_and_a_second_pass(esrgan_client: TestClient) -> None:
    items = [{"job_id": "a", "prompt": "a castle", "seeds": [7, 8]}]
    hires = {"scale": 2, "upscaler": "tiny-esrgan-old-x4", "steps": 2, "denoising_strength": 0.5}
    events = run_call(esrgan_client, call_body(hires=hires, items=items))
    assert events[-1].type == "done", events[-1]
    found = images(events)
    assert len(found) == 2
    for event in found.values():
        assert pixels(event).shape == (128, 128, 3)
        assert "Hires upscaler: tiny-esrgan-old-x4" in event.infotext and "Hires upscale: 2" in event.infotext
    alone = images(run_call(esrgan_client, call_body(hires=hires, items=[{**items[0], "seeds": [8]}])))
    assert np.array_equal(pixels(alone[("a", 0)]), pixels(found[("a", 1)]))


def test_a_refused_pickle_upscaler_says_why_and_never_runs(esrgan_client: TestClient, esrgan_dir: Path) -> None:
    resp = esrgan_client.post("/v1/generate", json=call_body(hires={"scale": 2, "upscaler": "4x-bomb"}))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["details"][0]["field"] == "hires.upscaler"
    assert "refused" in error["message"] and "--allow-pickle" in error["message"]
    resp = esrgan_client.post("/v1/generate", json=call_body(hires={"scale": 2, "upscaler": "8x-nothing"}))
    assert resp.status_code == 400 and "tiny-esrgan-x4" in resp.json()["error"]["available"]
    assert not (esrgan_dir / "pwned").exists()


def test_allowed_pickles_are_read_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    (folder / "bomb.pth").write_bytes(pickle.dumps({"model.0.weight": _Bomb(marker)}))
    state = {k: v.contiguous() for k, v in tiny_rrdbnet(4).state_dict().items()}
    torch.save(to_old_names(state, num_upsample=2), folder / "4x_old.pth")
    registry = AdapterRegistry(tmp_path, allow_pickle=True)
    assert set(registry.entries(AdapterKind.upscaler)) == {"4x_old"}
    assert "Weights only load failed" in registry.refused(AdapterKind.upscaler)["bomb"]
    with pytest.raises(pickle.UnpicklingError):
        load_file(folder / "bomb.pth", allow_pickle=True)
    assert load_file(folder / "4x_old.pth", allow_pickle=True).spec.scale == 4
    assert not marker.exists()
