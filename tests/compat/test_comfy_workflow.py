"""ComfyUI ``prompt`` graphs → A1111-keyed parameters: links followed, odd graphs answered with ``{}``."""

from __future__ import annotations

import json
from typing import Any

from ablerefusal.gateway.compat.comfy_workflow import MAX_WORKFLOW_CHARS, parameters_from_workflow


def graph(**sampler_inputs: Any) -> dict[str, Any]:
    inputs = {"positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "model": ["4", 0], **sampler_inputs}
    return {
        "3": {"class_type": "KSamplerAdvanced", "inputs": inputs},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl/base.v1.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": ["10", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["8", 0]}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "9": {"class_type": "PrimitiveNode", "inputs": {"value": 987}},
        "10": {"class_type": "PrimitiveNode", "inputs": {"value": 768}},
    }


def test_links_to_primitives_and_through_conditioning_nodes_are_followed() -> None:
    found = parameters_from_workflow(json.dumps(graph(noise_seed=["9", 0], steps=12, cfg=5)))
    assert found == {
        "Prompt": "a fox",
        "Negative prompt": "blurry",
        "Seed": "987",
        "Steps": "12",
        "CFG scale": "5",
        "Size-1": "1024",
        "Size-2": "768",
        "Model": "sdxl/base.v1",
    }


def test_a_link_cycle_ends() -> None:
    cyclic = graph()
    cyclic["6"] = {"class_type": "Reroute", "inputs": {"x": ["11", 0]}}
    cyclic["11"] = {"class_type": "Reroute", "inputs": {"x": ["6", 0]}}
    assert parameters_from_workflow(json.dumps(cyclic))["Prompt"] == ""


def test_what_is_not_a_graph_with_a_sampler_gives_nothing() -> None:
    for text in ("", "not json", "[1, 2]", "{}", json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}})):
        assert parameters_from_workflow(text) == {}, text
    assert parameters_from_workflow("[" * 100_000 + "]" * 100_000) == {}
    assert parameters_from_workflow(" " * (MAX_WORKFLOW_CHARS + 1)) == {}
    # Values of the wrong type are left out, never reported as something else.
    odd = parameters_from_workflow(json.dumps(graph(seed=True, steps="many", sampler_name=3)))
    assert "Seed" not in odd and "Steps" not in odd and "Sampler" not in odd
