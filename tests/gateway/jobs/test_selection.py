"""The claim policy alone: priority, FIFO, compatibility, batch size, loaded-model preference, skip window."""

from __future__ import annotations

from typing import Any

from ablerefusal.gateway.jobs.selection import Candidate, select_batch

NOW = 1000.0


def cand(seq: int, priority: int = 0, model: str = "a", age: float = 0.0, **kw: Any) -> Candidate:
    fields: dict[str, Any] = {
        "width": 64,
        "height": 64,
        "steps": 2,
        "sampler": "euler_a",
        "cfg_scale": 7.5,
        "batch_size": 1,
    }
    fields.update(kw)
    return Candidate(id=f"j{seq}", priority=priority, seq=seq, model=model, eligible_since=NOW - age, **fields)


def ids(batch: list[Candidate]) -> list[str]:
    return [c.id for c in batch]


def pick(ordered: list[Candidate], **kw: Any) -> list[str]:
    opts: dict[str, Any] = {"loaded_model": None, "max_images": 4, "coalesce": True, "now": NOW, "max_skip_s": 2.0}
    opts.update(kw)
    return ids(select_batch(ordered, **opts))


def test_empty_and_no_coalescing() -> None:
    assert pick([]) == []
    assert pick([cand(1), cand(2)], coalesce=False) == ["j1"]


def test_only_compatible_jobs_join() -> None:
    ordered = [
        cand(1),
        cand(2, width=128),
        cand(3, steps=3),
        cand(4, sampler="ddim"),
        cand(5, cfg_scale=5.0),
        cand(6, model="b"),
        cand(7),
    ]
    assert pick(ordered) == ["j1", "j7"]


def test_cfg_scale_is_per_item_for_workers_that_apply_it_per_image() -> None:
    ordered = [
        cand(1, cfg_scale=7.5),
        cand(2, cfg_scale=5.0),
        cand(3, cfg_scale=1.0),  # unguided: no negative half in the UNet pass, so never with guided jobs
        cand(4, cfg_scale=9.0, batch_size=2),
        cand(5, cfg_scale=12.0),
    ]
    assert pick(ordered, per_item_cfg=True) == ["j1", "j2", "j4"]  # 4 images: j5 would exceed the budget
    assert pick(ordered, per_item_cfg=True, max_images=8) == ["j1", "j2", "j4", "j5"]
    assert pick(ordered, per_item_cfg=False, max_images=8) == ["j1"]  # an older worker: one scale per call
    unguided = [cand(1, cfg_scale=1.0), cand(2, cfg_scale=6.0), cand(3, cfg_scale=1.0)]
    assert pick(unguided, per_item_cfg=True) == ["j1", "j3"]


def test_image_budget() -> None:
    ordered = [cand(1, batch_size=2), cand(2, batch_size=3), cand(3, batch_size=2), cand(4)]
    assert pick(ordered) == ["j1", "j3"]
    assert pick(ordered, max_images=5) == ["j1", "j2"]
    # The head always runs, even alone over the budget.
    assert pick([cand(1, batch_size=4)], max_images=2) == ["j1"]


def test_stale_incompatible_job_blocks_fill_ins() -> None:
    # j2 (another model) has waited past the skip window: j3 may not jump it.
    assert pick([cand(1), cand(2, model="b", age=5), cand(3)]) == ["j1"]
    # Fresh, it may be passed over for a moment.
    assert pick([cand(1), cand(2, model="b", age=1), cand(3)]) == ["j1", "j3"]
    # A stale higher-priority job blocks lower-priority fill-ins too.
    assert pick([cand(1, priority=5), cand(2, priority=3, model="b", age=5), cand(3)]) == ["j1"]


def test_loaded_model_preferred_among_equal_priority_only() -> None:
    ordered = [cand(1, model="b"), cand(2, model="a"), cand(3, model="b")]
    assert pick(ordered, loaded_model="a") == ["j2"]
    # Past the skip window, the older job of the other model goes first.
    stale = [cand(1, model="b", age=3), cand(2, model="a")]
    assert pick(stale, loaded_model="a") == ["j1"]
    # Never over a higher priority.
    assert pick([cand(1, priority=1, model="b"), cand(2, model="a")], loaded_model="a") == ["j1"]


def test_batch_keeps_run_order_after_head() -> None:
    ordered = [cand(1, model="b"), cand(2, priority=0), cand(3, priority=0), cand(4, priority=-1)]
    assert pick(ordered, loaded_model="a") == ["j2", "j3", "j4"]
