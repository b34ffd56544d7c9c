"""Which adapter files a call names, checked before the device is touched: LoRAs (the ``loras`` field merged
with each prompt's ``<lora:…>`` tags), embeddings named in the prompts, the VAE. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from ablerefusal.prompt_syntax import PromptSyntaxError, extract_loras, merge_loras
from ablerefusal.protocol import GenerateCall, LoraRef
from ablerefusal.worker.engine.errors import InvalidRequestError
from ablerefusal.worker.engine.kinds import AdapterEntry, AdapterKind, AdapterRegistry
from ablerefusal.worker.engine.registry import ModelEntry


@dataclass
class Resolved:
    loras: list[tuple[AdapterEntry, float]] = field(default_factory=list)
    embeddings: list[AdapterEntry] = field(default_factory=list)
    vae: AdapterEntry | None = None

    @property
    def empty(self) -> bool:
        return not (self.loras or self.embeddings or self.vae)


def call_loras(call: GenerateCall) -> list[LoraRef]:
    """The call's LoRA set: every item's prompt tags merged with ``call.loras`` (which wins per name). Coalesced
    items must agree, since the UNet runs them in one batch."""
    sets = []
    for n, item in enumerate(call.items):
        try:
            tags = extract_loras(item.prompt)[1]  # A1111 reads them from the positive prompt only
        except PromptSyntaxError as exc:
            raise InvalidRequestError(f"items.{n}.prompt: {exc}", field=f"items.{n}.prompt") from exc
        sets.append(merge_loras(tags, call.loras))
    if any(s != sets[0] for s in sets[1:]):
        raise InvalidRequestError(
            "items: coalesced items name different LoRAs or weights in their prompts; one call runs one LoRA set",
            field="items",
        )
    return sets[0]


def resolve(call: GenerateCall, model: ModelEntry, registry: AdapterRegistry) -> Resolved:
    """The entries a call uses; raises a 400/404 naming the field and the file for a missing or wrong one."""
    out = Resolved()
    for ref in call_loras(call):
        entry = registry.get(AdapterKind.lora, ref.name, "loras")
        if entry.family is not model.family:
            raise InvalidRequestError(
                f"loras: LoRA {entry.id!r} is for {entry.family.value} models; model {model.id!r} is "
                f"{model.family.value}",
                field="loras",
            )
        out.loras.append((entry, ref.weight))
    if call.vae is not None:
        out.vae = registry.get(AdapterKind.vae, call.vae, "vae")
    texts = [t for item in call.items for t in (item.prompt, item.negative_prompt)]
    out.embeddings = used_embeddings(texts, registry, model)
    return out


def used_embeddings(texts: list[str], registry: AdapterRegistry, model: ModelEntry) -> list[AdapterEntry]:
    """The embeddings of the model's family that ``texts`` name as words (others stay plain words, as in A1111,
    which skips embeddings whose vectors do not fit the model)."""
    import re

    joined = "\n".join(texts)
    return [
        e
        for e in registry.entries(AdapterKind.embedding).values()
        if e.family is model.family and re.search(rf"(?<![\w.-]){re.escape(e.id)}(?![\w.-])", joined)
    ]
