"""A1111 sampler names → our sampler ids.

A1111 clients send either an old combined name ("DPM++ 2M Karras") or, since A1111 1.9, a base name plus a
``scheduler`` ("DPM++ 2M" + "karras"). Both resolve against the worker's sampler table (``SamplerInfo``:
id, A1111 display name, aliases), so whatever the worker supports is reachable and nothing else is: a
combination the table lacks is an error naming the valid choices, never a silent substitute.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ablerefusal.protocol import SamplerInfo


@dataclass(frozen=True)
class Scheduler:
    """One of A1111's noise schedules (modules/sd_schedulers.py)."""

    name: str
    label: str
    # A1111's own knob, reported by /schedulers; karras and polyexponential use a rho.
    default_rho: float = -1.0


A1111_SCHEDULERS: tuple[Scheduler, ...] = (
    Scheduler("automatic", "Automatic"),
    Scheduler("uniform", "Uniform"),
    Scheduler("karras", "Karras", 7.0),
    Scheduler("exponential", "Exponential"),
    Scheduler("polyexponential", "Polyexponential", 1.0),
    Scheduler("sgm_uniform", "SGM Uniform"),
    Scheduler("kl_optimal", "KL Optimal"),
    Scheduler("align_your_steps", "Align Your Steps"),
    Scheduler("simple", "Simple"),
    Scheduler("normal", "Normal"),
    Scheduler("ddim", "DDIM"),
    Scheduler("beta", "Beta"),
)

# "automatic" is the sampler's own schedule; A1111's "uniform" spaces sigmas as the model was trained,
# which is what a diffusers scheduler does without extra options. Both therefore mean the plain sampler.
_PLAIN = frozenset({"automatic", "uniform"})


class SamplerError(ValueError):
    """The sampler/scheduler pair cannot be honoured; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.available = available


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text).strip().casefold()


def _by_name(table: Sequence[SamplerInfo]) -> dict[str, SamplerInfo]:
    index: dict[str, SamplerInfo] = {}
    for info in table:
        for key in (info.id, info.name, *info.aliases):
            index.setdefault(_norm(key), info)
    return index


def find_scheduler(value: str) -> Scheduler | None:
    key = _norm(value)
    return next((s for s in A1111_SCHEDULERS if key in (_norm(s.name), _norm(s.label))), None)


def _suffix_pattern(sched: Scheduler) -> re.Pattern[str]:
    words = "|".join(re.escape(w).replace(r"\ ", r"[\s_\-]+") for w in {sched.label, sched.name.replace("_", " ")})
    return re.compile(rf"^(?P<base>.+?)[\s_\-]+(?:{words})$", re.IGNORECASE)


_SUFFIXES = tuple((s, _suffix_pattern(s)) for s in A1111_SCHEDULERS if s.name not in _PLAIN)


def _split_scheduler(name: str) -> tuple[str, Scheduler | None]:
    """'DPM++ 2M Karras' → ('DPM++ 2M', karras); a name without a schedule suffix comes back whole."""
    for sched, pattern in _SUFFIXES:
        match = pattern.match(name.strip())
        if match is not None:
            return match.group("base"), sched
    return name, None


def _variant(index: dict[str, SamplerInfo], base: str, sched: Scheduler) -> SamplerInfo | None:
    base_info = index.get(_norm(base))
    candidates = [f"{base} {sched.label}", f"{base} {sched.name}"]
    if base_info is not None:
        candidates += [f"{base_info.name} {sched.label}", f"{base_info.id}_{sched.name}"]
    return next((index[_norm(c)] for c in candidates if _norm(c) in index), None)


def resolve_sampler(table: Sequence[SamplerInfo], sampler_name: str, scheduler: str | None) -> SamplerInfo:
    """The table entry an A1111 ``sampler_name`` (+ optional ``scheduler``) means."""
    index = _by_name(table)
    names = [info.name for info in table]
    sched = find_scheduler(scheduler) if scheduler else None
    if scheduler and sched is None:
        raise SamplerError(
            "scheduler",
            f"unknown scheduler {scheduler!r}; A1111 schedulers are " + ", ".join(s.name for s in A1111_SCHEDULERS),
            [s.name for s in supported_schedulers(table)],
        )
    if sched is None or sched.name in _PLAIN:
        found = index.get(_norm(sampler_name))
        if found is None:
            raise SamplerError("sampler_name", f"unknown sampler {sampler_name!r}", names)
        return found
    base, suffix = _split_scheduler(sampler_name)
    if suffix is not None and suffix != sched:
        raise SamplerError(
            "scheduler",
            f"sampler {sampler_name!r} already names the {suffix.label} schedule, "
            f"which conflicts with scheduler {scheduler!r}",
            names,
        )
    if _norm(base) not in index and _norm(sampler_name) not in index:
        raise SamplerError("sampler_name", f"unknown sampler {sampler_name!r}", names)
    found = _variant(index, base, sched)
    if found is None:
        with_schedule = [info.name for info in table if _split_scheduler(info.name)[1] == sched]
        raise SamplerError(
            "scheduler",
            f"the {sched.label} schedule is not available for sampler {base!r}; samplers with it: "
            + (", ".join(with_schedule) or "none"),
            with_schedule,
        )
    return found


def supported_schedulers(table: Sequence[SamplerInfo]) -> list[Scheduler]:
    """Schedulers at least one table entry honours: the plain ones always, others when a variant exists."""
    present = {sched for info in table if (sched := _split_scheduler(info.name)[1]) is not None}
    return [s for s in A1111_SCHEDULERS if s.name in _PLAIN or s in present]


def schedule_of(info: SamplerInfo) -> Scheduler | None:
    """The schedule a combined table entry (e.g. 'DPM++ 2M Karras') implies, if any."""
    return _split_scheduler(info.name)[1]
