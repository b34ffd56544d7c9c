"""Generation parameters from a ComfyUI ``prompt`` chunk (the API-format graph ComfyUI writes into PNGs).

The graph is ``{node_id: {"class_type": ..., "inputs": {...}}}``; an input that comes from another node is
``[node_id, output_index]``. We read the first sampler node and follow its links to the text encoders,
the latent size and the checkpoint loader. The answer uses A1111's infotext keys (``Prompt``, ``Steps``,
``Size-1``...) so the web UI fills its form the same way for both kinds of image.
"""

from __future__ import annotations

import json
from typing import Any

# Sampler nodes whose inputs name seed, steps, cfg, sampler_name and positive/negative conditioning.
SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
# Longest graph we look at: a workflow is a few KB; anything far larger is not worth parsing.
MAX_WORKFLOW_CHARS = 1_000_000
# How many links we follow from a conditioning input to its text (reroutes, conditioning combiners).
MAX_HOPS = 16

Graph = dict[str, dict[str, Any]]


def _node(graph: Graph, link: Any) -> dict[str, Any] | None:
    if isinstance(link, list) and link and isinstance(link[0], (str, int)):
        node = graph.get(str(link[0]))
        return node if isinstance(node, dict) else None
    return None


def _text(graph: Graph, link: Any) -> str | None:
    """The text of the CLIPTextEncode-like node a conditioning input leads to."""
    node = _node(graph, link)
    for _ in range(MAX_HOPS):
        if node is None:
            return None
        inputs = node.get("inputs") or {}
        for key in ("text", "text_g", "prompt"):
            if isinstance(inputs.get(key), str):
                return str(inputs[key])
        # Follow the first linked input (reroutes, conditioning set-area nodes and the like).
        node = next((_node(graph, v) for v in inputs.values() if _node(graph, v) is not None), None)
    return None


def _scalar(graph: Graph, value: Any) -> Any:
    """A literal input, or the literal ``value`` input of a primitive node it links to."""
    node = _node(graph, value)
    if node is not None:
        return (node.get("inputs") or {}).get("value")
    return value


def parameters_from_workflow(text: str) -> dict[str, str]:
    """A1111-keyed parameters read from a ComfyUI ``prompt`` chunk; ``{}`` when it is not such a graph or has
    no sampler node."""
    if len(text) > MAX_WORKFLOW_CHARS:
        return {}
    try:
        graph = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return {}
    if not isinstance(graph, dict):
        return {}
    graph = {str(k): v for k, v in graph.items() if isinstance(v, dict)}
    sampler = next((n for n in graph.values() if n.get("class_type") in SAMPLER_NODES), None)
    if sampler is None or not isinstance(sampler.get("inputs"), dict):
        return {}
    inputs: dict[str, Any] = sampler["inputs"]
    found: dict[str, str] = {}
    positive = _text(graph, inputs.get("positive"))
    negative = _text(graph, inputs.get("negative"))
    found["Prompt"] = positive or ""
    found["Negative prompt"] = negative or ""
    for key, name in (("seed", "Seed"), ("noise_seed", "Seed"), ("steps", "Steps"), ("cfg", "CFG scale")):
        value = _scalar(graph, inputs.get(key))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = str(value)
    sampler_name = _scalar(graph, inputs.get("sampler_name"))
    if isinstance(sampler_name, str):
        found["Sampler"] = sampler_name
    scheduler = _scalar(graph, inputs.get("scheduler"))
    if isinstance(scheduler, str):
        found["Schedule type"] = scheduler
    latent = _node(graph, inputs.get("latent_image"))
    if latent is not None:
        size = latent.get("inputs") or {}
        width, height = _scalar(graph, size.get("width")), _scalar(graph, size.get("height"))
        if isinstance(width, int) and isinstance(height, int):
            found["Size-1"], found["Size-2"] = str(width), str(height)
    model = _node(graph, inputs.get("model"))
    for _ in range(MAX_HOPS):
        if model is None:
            break
        ckpt = (model.get("inputs") or {}).get("ckpt_name")
        if isinstance(ckpt, str):
            found["Model"] = ckpt.rsplit(".", 1)[0]
            break
        model = _node(graph, (model.get("inputs") or {}).get("model"))
    return found
