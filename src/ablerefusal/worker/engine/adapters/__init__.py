"""A call's adapters on the cached pipeline: LoRAs (``loras``), embeddings used by name (``embeddings``),
the VAE choice (``vae``), and the A1111 prompt syntax with clip skip (``prompts``).

``CallAdapters`` is what the service resolved for one call (registry entries, the VAE module); the runner
applies it around the generation with ``adapters_applied`` and encodes prompts with ``encode_rows``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ablerefusal.prompt_syntax import extract_loras
from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.engine.adapters.embeddings import embeddings_loaded
from ablerefusal.worker.engine.adapters.loras import LoraState, apply_loras
from ablerefusal.worker.engine.adapters.prompts import Encoded, PromptEncoder
from ablerefusal.worker.engine.adapters.vae import vae_swapped
from ablerefusal.worker.engine.kinds import AdapterEntry

LORA_CACHE_SIZE = 4  # LoRAs kept loaded per cached pipeline (small next to the base weights)


@dataclass
class CallAdapters:
    loras: list[tuple[AdapterEntry, float]] = field(default_factory=list)
    embeddings: list[AdapterEntry] = field(default_factory=list)
    vae_entry: AdapterEntry | None = None
    vae: Any | None = None  # the loaded AutoencoderKL for vae_entry
    clip_skip: int | None = None
    upscaler: Any | None = None  # the hires fix's loaded model upscaler (engine.upscalers.run.LoadedUpscaler)


@contextlib.contextmanager
def adapters_applied(resident: Any, adapters: CallAdapters) -> Iterator[None]:
    """The call's LoRAs active (others disabled, none reloaded) and its VAE in place while the block runs."""
    state = resident.lora_state
    if state is None:
        state = resident.lora_state = LoraState()
    apply_loras(resident.pipe, state, adapters.loras, LORA_CACHE_SIZE)
    if adapters.loras and resident.pipe.device.type == "cpu":
        from ablerefusal.worker.engine.determinism import make_batch_invariant

        make_batch_invariant(resident.pipe)  # the LoRA layers' own linears, row by row like the rest
    with vae_swapped(resident.pipe, adapters.vae):
        yield


@dataclass(frozen=True)
class RowText:
    prompt: str
    negative_prompt: str


def encode_rows(
    pipe: Any,
    family: ModelFamily,
    rows: Sequence[RowText],
    do_cfg: bool,
    device: torch.device,
    adapters: CallAdapters,
) -> list[dict[str, Any]]:
    """Per row, the pipeline's embedding arguments for a batch of one, positive and negative of equal length.

    Each text is encoded alone (so a row's embeddings never depend on its batch-mates), ``<lora:…>`` tags
    taken out first; rows of different lengths (long prompts) cannot share a UNet batch: see ``length_of``."""
    encoder = PromptEncoder(pipe, family, device, adapters.clip_skip)
    out: list[dict[str, Any]] = []
    with embeddings_loaded(pipe, family, adapters.embeddings):
        cache: dict[str, Encoded] = {}

        def enc(text: str) -> Encoded:
            if text not in cache:
                cache[text] = encoder.encode(text)
            return cache[text]

        for row in rows:
            pos = enc(extract_loras(row.prompt)[0])  # tags are read from the positive prompt only, as in A1111
            neg = enc(row.negative_prompt) if do_cfg else None
            chunks = max(pos.chunks, neg.chunks if neg else 0)
            args: dict[str, Any] = {"prompt_embeds": encoder.padded(pos, chunks)}
            if neg is not None:
                npe = encoder.padded(neg, chunks)
                if (
                    family is ModelFamily.sdxl
                    and row.negative_prompt == ""
                    and pipe.config.force_zeros_for_empty_prompt
                ):
                    npe = torch.zeros_like(npe)  # SDXL's "no negative prompt" is zero embeddings
                args["negative_prompt_embeds"] = npe
            if family is ModelFamily.sdxl:
                assert pos.pooled is not None
                args["pooled_prompt_embeds"] = pos.pooled
                if neg is not None:
                    assert neg.pooled is not None
                    zero = row.negative_prompt == "" and pipe.config.force_zeros_for_empty_prompt
                    args["negative_pooled_prompt_embeds"] = torch.zeros_like(neg.pooled) if zero else neg.pooled
            out.append(args)
    return out


def length_of(row_embeds: dict[str, Any]) -> int:
    return int(row_embeds["prompt_embeds"].shape[1])


def stack(per_row: Sequence[dict[str, Any]], do_cfg: bool) -> dict[str, Any]:
    """The rows' embedding arguments as one batch (every row of the same length)."""
    keys = per_row[0].keys()
    batch: dict[str, Any] = {k: torch.cat([r[k] for r in per_row]) for k in keys}
    if not do_cfg and "negative_prompt_embeds" not in batch:
        batch["negative_prompt_embeds"] = None
    return batch
