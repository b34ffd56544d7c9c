"""Prompt embeddings with AUTOMATIC1111's syntax: weights, BREAK, long prompts, embeddings by name, clip skip.

The text is parsed by ``ablerefusal.prompt_syntax`` (A1111's rules) into weighted fragments per BREAK segment;
compel's ``EmbeddingsProvider`` tokenizes them, splits a segment longer than 75 tokens into 77-token chunks at
the last phrase break (``,`` ``.`` ``;`` ``:``) before the limit, encodes each chunk and applies the weights.
Each BREAK segment is encoded on its own and the chunks are concatenated: BREAK pads the current chunk and
starts a new one, as in A1111. SDXL encodes every segment with both text encoders (penultimate layer, as
diffusers and A1111 do) and takes the pooled embedding from the second encoder's first 77 tokens.

Weights follow compel's arithmetic (a weighted token's embedding is pushed away from the empty prompt's by
its weight; below 1 the fragment also fades towards the prompt without it), not A1111's multiply-and-restore-
the-mean: prompts read the same, pixels of weighted prompts differ from A1111's. A prompt without weights
gives exactly the embeddings of diffusers' own ``encode_prompt``.

Clip skip N (A1111's "stop at last layers") runs the text encoders with their last N-1 layers left out for
the duration of the encoding, so SD 1.5 reads the normalised output of layer -N and SDXL the layer before
that (its usual penultimate layer, moved N-1 down). The pooled SDXL embedding always comes from the full
encoder, as A1111 keeps it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ablerefusal.prompt_syntax import parse_attention
from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.engine.errors import InvalidRequestError


@dataclass
class Encoded:
    """One text's conditioning: (1, 77·chunks, width) embeddings and, for SDXL, the (1, P) pooled one."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // 77


def _layers(text_encoder: Any) -> Any:
    model = getattr(text_encoder, "text_model", text_encoder)
    return model.encoder


@contextlib.contextmanager
def clip_skipped(text_encoders: list[Any], clip_skip: int | None) -> Iterator[None]:
    """The text encoders without their last ``clip_skip - 1`` layers, restored on exit."""
    skip = (clip_skip or 1) - 1
    if skip == 0:
        yield
        return
    encoders = [_layers(te) for te in text_encoders]
    originals = [enc.layers for enc in encoders]
    depth = min(len(layers) for layers in originals)
    if skip >= depth:
        raise InvalidRequestError(
            f"clip_skip: {clip_skip} is more than this model's text encoder has layers ({depth}); use 1 to {depth}",
            field="clip_skip",
        )
    try:
        for enc, layers in zip(encoders, originals, strict=True):
            enc.layers = torch.nn.ModuleList(list(layers)[: len(layers) - skip])
        yield
    finally:
        for enc, layers in zip(encoders, originals, strict=True):
            enc.layers = layers


class PromptEncoder:
    """Encodes texts for one pipeline and one call (the clip skip and the loaded embeddings are the call's)."""

    def __init__(self, pipe: Any, family: ModelFamily, device: torch.device, clip_skip: int | None) -> None:
        from compel import EmbeddingsProvider, ReturnedEmbeddingsType, SplitLongTextMode

        self.pipe, self.family, self.device, self.clip_skip = pipe, family, device, clip_skip
        pairs = [(pipe.tokenizer, pipe.text_encoder)]
        kind = ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED
        if family is ModelFamily.sdxl:
            pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
            kind = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
        self.providers = [
            EmbeddingsProvider(
                tokenizer=tokenizer,
                text_encoder=encoder,
                truncate=False,
                returned_embeddings_type=kind,
                split_long_text_mode=SplitLongTextMode.PHRASES,
                device=device,
            )
            for tokenizer, encoder in pairs
        ]

    def _skipped(self) -> contextlib.AbstractContextManager[None]:
        return clip_skipped([p.text_encoder for p in self.providers], self.clip_skip)

    def _segment(self, provider: Any, fragments: list[tuple[str, float]]) -> torch.Tensor:
        # Multi-vector embeddings: "name" becomes "name name_1 …", the tokens load_textual_inversion added.
        texts = [self.pipe.maybe_convert_prompt(text, provider.tokenizer) for text, _ in fragments]
        weights = [weight for _, weight in fragments]
        embeds: torch.Tensor = provider.get_embeddings_for_weighted_prompt_fragments(
            text_batch=[texts], fragment_weights_batch=[weights], device=self.device
        )
        return embeds

    def encode(self, text: str) -> Encoded:
        segments = parse_attention(text)
        with self._skipped():
            per_encoder = [
                torch.cat([self._segment(provider, segment) for segment in segments], dim=1)
                for provider in self.providers
            ]
            # The two tokenizers share a vocabulary, so both encoders see the same chunks; pad in case not.
            longest = max(e.shape[1] for e in per_encoder)
            per_encoder = [self._pad(p, e, longest) for p, e in zip(self.providers, per_encoder, strict=True)]
        embeds = torch.cat(per_encoder, dim=-1)
        if self.family is not ModelFamily.sdxl:
            return Encoded(embeds)
        second = self.providers[1]
        first = self.pipe.maybe_convert_prompt("".join(t for t, _ in segments[0]), second.tokenizer)
        pooled = second.get_pooled_embeddings([first], device=self.device)
        return Encoded(embeds, pooled.to(embeds.dtype))

    @staticmethod
    def _pad(provider: Any, embeds: torch.Tensor, length: int) -> torch.Tensor:
        """Extend to ``length`` tokens with empty-prompt chunks (A1111 pads a shorter cond/uncond so too)."""
        if embeds.shape[1] == length:
            return embeds
        empty = provider.empty_z.to(embeds.device, embeds.dtype)
        repeats = (length - embeds.shape[1]) // empty.shape[1]
        return torch.cat([embeds, empty.repeat(1, repeats, 1)], dim=1)

    def padded(self, encoded: Encoded, chunks: int) -> torch.Tensor:
        """``encoded``'s embeddings extended to ``chunks`` chunks with empty-prompt chunks of every encoder."""
        if encoded.chunks == chunks:
            return encoded.embeds
        with self._skipped():
            empty = torch.cat([p.empty_z.to(encoded.embeds.device) for p in self.providers], dim=-1)
        extra = empty.to(encoded.embeds.dtype).repeat(1, chunks - encoded.chunks, 1)
        return torch.cat([encoded.embeds, extra], dim=1)
