"""Textual-inversion embeddings used by name: loaded into the tokenizers and text encoders for the encoding of
one call's prompts and taken out again right after, so that no later prompt is tokenized differently (an
added token also matches inside longer words). Their vectors are kept in memory between calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.engine.errors import InvalidRequestError
from ablerefusal.worker.engine.kinds import AdapterEntry, load_pickle_state
from ablerefusal.worker.engine.kinds.embedding import vectors_of


def _vectors(entry: AdapterEntry) -> dict[str, Any]:
    if entry.pickle:
        return vectors_of(load_pickle_state(entry.path))
    from safetensors.torch import load_file

    return vectors_of(load_file(str(entry.path)))


@contextlib.contextmanager
def embeddings_loaded(pipe: Any, family: ModelFamily, entries: list[AdapterEntry]) -> Iterator[None]:
    """``entries`` usable by name while the block runs (both SDXL text encoders get their own vectors)."""
    if not entries:
        yield
        return
    targets = [(pipe.tokenizer, pipe.text_encoder, "clip_l")]
    if family is ModelFamily.sdxl:
        targets.append((pipe.tokenizer_2, pipe.text_encoder_2, "clip_g"))
    try:
        for entry in entries:
            vectors = _vectors(entry)
            for tokenizer, encoder, key in targets:
                vector = vectors[key] if family is ModelFamily.sdxl else next(iter(vectors.values()))
                if vector.ndim == 1:
                    vector = vector[None]
                if vector.shape[-1] != encoder.get_input_embeddings().weight.shape[1]:
                    raise InvalidRequestError(
                        f"prompt: embedding {entry.id!r} has {vector.shape[-1]}-wide vectors; this model's text "
                        f"encoder takes {encoder.get_input_embeddings().weight.shape[1]}",
                        field="prompt",
                    )
                pipe.load_textual_inversion(
                    {entry.id: vector}, token=entry.id, tokenizer=tokenizer, text_encoder=encoder
                )
        yield
    finally:
        for tokenizer, encoder, _ in targets:
            pipe.unload_textual_inversion(tokenizer=tokenizer, text_encoder=encoder)
