"""The official ``openai`` package against a live gateway + worker with a tiny model."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from compat_live import LiveGateway
from PIL import Image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(live_gateway: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_gateway.url}/v1", api_key=live_gateway.api_key, max_retries=0, timeout=120)


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def test_b64_json_images_with_extensions(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    result = client.images.generate(
        prompt="a tiny fox",
        model=live_gateway.single_file_model,
        n=2,
        size="64x64",
        response_format="b64_json",
        extra_body={
            "steps": 2,
            "seed": 77,
            "negative_prompt": "blur",
            "cfg_scale": 3.0,
            "sampler": "DPM++ 2M",
        },
    )
    assert result.data is not None and len(result.data) == 2
    infos = []
    for item in result.data:
        assert item.b64_json is not None and item.url is None and item.revised_prompt == "a tiny fox"
        image = _png(base64.b64decode(item.b64_json))
        assert image.size == (64, 64)
        infos.append(image.info["parameters"])
    assert "Seed: 77" in infos[0] and "Seed: 78" in infos[1]
    assert "Steps: 2" in infos[0] and "Negative prompt: blur" in infos[0] and "CFG scale: 3" in infos[0]


def test_url_images_are_absolute_links_into_outputs(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    result = client.images.generate(
        prompt="a tiny owl",
        size="64x64",
        response_format="url",
        extra_body={"steps": 1},
    )
    assert result.data is not None and len(result.data) == 1
    url = result.data[0].url
    assert url is not None and url.startswith(f"{live_gateway.url}/outputs/") and result.data[0].b64_json is None
    fetched = httpx.get(url, headers={"Authorization": f"Bearer {live_gateway.api_key}"})
    assert fetched.status_code == 200 and _png(fetched.content).size == (64, 64)


def test_url_ignores_forwarded_headers_of_untrusted_clients(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    # Security finding 11: the url was built from X-Forwarded-Proto of any local client. No proxy is
    # configured here, so a client claiming https (or another host) changes nothing.
    result = client.images.generate(
        prompt="a tiny owl",
        size="64x64",
        response_format="url",
        extra_body={"steps": 1},
        extra_headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "Forwarded": "proto=https"},
    )
    assert result.data is not None
    url = result.data[0].url
    assert url is not None and url.startswith(f"{live_gateway.url}/outputs/")


def test_bad_size_is_a_bad_request_naming_size(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(prompt="x", size="100x100")
    assert err.value.param == "size" and err.value.code == "invalid_value"
    assert "multiples of 8" in err.value.message


def test_unknown_model_is_not_found(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.images.generate(prompt="x", model="dall-e-3", size="64x64")
    assert err.value.code == "model_not_found" and live_gateway.diffusers_model in err.value.message


def test_wrong_key_is_refused(live_gateway: LiveGateway) -> None:
    bad = openai.OpenAI(base_url=f"{live_gateway.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.images.generate(prompt="x", size="64x64")


def test_models_list_and_retrieve(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    ids = {m.id for m in client.models.list()}
    assert {live_gateway.diffusers_model, live_gateway.single_file_model} <= ids
    assert client.models.retrieve(live_gateway.diffusers_model).owned_by == "ablerefusal"
