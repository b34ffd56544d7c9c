"""LoRAs on the cached pipeline: loaded once through diffusers' ``load_lora_weights`` (PEFT), kept loaded in a
small per-pipeline cache, switched per call with ``set_adapters`` and switched off with ``disable_lora``.

The base pipeline is never reloaded. A call without LoRAs runs with every adapter disabled, where PEFT's layers
return exactly their base layer's output: the pixels of a worker that never saw a LoRA. A LoRA at weight 0 adds
an exact zero. Adapters are applied in the order of their ids, so the order a user wrote them in does not
change the pixels (PEFT sums their outputs in that order).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ablerefusal.worker.engine.errors import InvalidRequestError
from ablerefusal.worker.engine.kinds import AdapterEntry, load_pickle_state

log = logging.getLogger(__name__)


@dataclass
class LoraState:
    """What is loaded into one cached pipeline: adapter names (LRU order) and the active set."""

    loaded: OrderedDict[str, AdapterEntry] = field(default_factory=OrderedDict)
    active: tuple[tuple[str, float], ...] = ()
    disabled: bool = True
    loads: int = 0  # files loaded so far (tests and the benchmark read it)


def adapter_name(entry: AdapterEntry) -> str:
    """A PEFT adapter name for a file version (module-dict keys allow no dots)."""
    return re.sub(r"\W", "_", entry.id) + "_" + entry.sha256[:12]


def _quiet_loading() -> Any:
    """transformers prints a load report of the other adapters' keys for every adapter loaded after the first."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    return previous


def apply_loras(pipe: Any, state: LoraState, wanted: list[tuple[AdapterEntry, float]], capacity: int) -> None:
    """Make exactly ``wanted`` (entry, weight) active on ``pipe``; load what is missing, evicting the least
    recently used adapters beyond ``capacity``."""
    from transformers.utils import logging as hf_logging

    if not wanted:
        if not state.disabled:
            pipe.disable_lora()
            state.disabled, state.active = True, ()
        return
    wanted = sorted(wanted, key=lambda pair: pair[0].id)
    names = [adapter_name(entry) for entry, _ in wanted]
    for (entry, _), name in zip(wanted, names, strict=True):
        if name in state.loaded:
            state.loaded.move_to_end(name)
            continue
        _evict(pipe, state, keep=set(names), room_for=1, capacity=capacity)
        previous = _quiet_loading()
        try:
            source: Any = load_pickle_state(entry.path) if entry.pickle else str(entry.path)
            pipe.load_lora_weights(source, adapter_name=name)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            _forget(pipe, name)
            raise InvalidRequestError(
                f"loras: LoRA {entry.id!r} cannot be applied to this model: {exc}", field="loras"
            ) from exc
        finally:
            hf_logging.set_verbosity(previous)
        state.loaded[name] = entry
        state.loads += 1
    active = tuple(zip(names, (weight for _, weight in wanted), strict=True))
    if state.disabled:
        pipe.enable_lora()
        state.disabled = False
    if active != state.active:
        pipe.set_adapters([n for n, _ in active], adapter_weights=[w for _, w in active])
        state.active = active


def _evict(pipe: Any, state: LoraState, keep: set[str], room_for: int, capacity: int) -> None:
    for name in list(state.loaded):
        if len(state.loaded) + room_for <= capacity:
            return
        if name in keep:
            continue
        _forget(pipe, name)
        del state.loaded[name]
        state.active = tuple(pair for pair in state.active if pair[0] != name)


def _forget(pipe: Any, name: str) -> None:
    try:
        pipe.delete_adapters(name)
    except (ValueError, KeyError, AttributeError):  # a half-loaded adapter may be missing from some modules
        log.debug("adapter %s was not fully loaded", name)
