"""What a call's adapters add to an image's parameters text, in AUTOMATIC1111's words: ``VAE hash`` and
``VAE`` (after ``Model``), ``Clip skip`` (only above 1), ``Lora hashes`` and ``TI hashes`` (``"name: hash, …"``,
quoted as A1111 quotes any value with a comma or colon), and our JSON metadata's fields."""

from __future__ import annotations

import json

from ablerefusal.protocol import GenerateCall
from ablerefusal.worker.engine.kinds.resolve import Resolved, call_loras


def quote(text: str) -> str:
    """A1111's ``infotext_utils.quote``: values that would break the ``key: value, …`` list are JSON strings."""
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def vae_pairs(used: Resolved) -> list[tuple[str, str]]:
    if used.vae is None:
        return []
    return [("VAE hash", used.vae.short_hash), ("VAE", quote(used.vae.name))]


def clip_skip_pairs(call: GenerateCall) -> list[tuple[str, str]]:
    return [("Clip skip", str(call.clip_skip))] if call.clip_skip and call.clip_skip > 1 else []


def _row_embeddings(used: Resolved, prompt: str, negative_prompt: str) -> list[str]:
    import re

    text = f"{prompt}\n{negative_prompt}"
    return [e.id for e in used.embeddings if re.search(rf"(?<![\w.-]){re.escape(e.id)}(?![\w.-])", text)]


def adapter_hash_pairs(used: Resolved, prompt: str, negative_prompt: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if used.loras:
        pairs.append(("Lora hashes", quote(", ".join(f"{e.id}: {e.short_hash}" for e, _ in used.loras))))
    names = set(_row_embeddings(used, prompt, negative_prompt))
    tis = [e for e in used.embeddings if e.id in names]
    if tis:
        pairs.append(("TI hashes", quote(", ".join(f"{e.id}: {e.short_hash}" for e in tis))))
    return pairs


def adapter_metadata(call: GenerateCall, used: Resolved, prompt: str, negative_prompt: str) -> dict[str, object]:
    """Our JSON metadata's adapter fields (absent when unused, so old readers see no change)."""
    fields: dict[str, object] = {}
    loras = call_loras(call)
    if loras:
        fields["loras"] = [ref.model_dump() for ref in loras]
    if call.clip_skip is not None:
        fields["clip_skip"] = call.clip_skip
    if call.vae is not None:
        fields["vae"] = call.vae
    embeddings = _row_embeddings(used, prompt, negative_prompt)
    if embeddings:
        fields["embeddings"] = embeddings
    return fields
