"""Which queued jobs one claim takes: the head job by priority then FIFO, plus compatible jobs.

Pure functions over rows already read inside the claim transaction, so the policy is testable alone.

Policy (issue 6, "Coalescing" and "Resident models"):

* Run order is priority (higher first), then submission order.
* Jobs may be taken out of run order (to prefer the worker's loaded model, or to fill a batch with
  compatible jobs) only while every job passed over became eligible less than ``max_skip_s`` ago. A job
  that has waited longer blocks everything behind it, so nothing starves.
* The worker's loaded model is preferred only among jobs of the top priority.
* A batch holds jobs with the same model, width, height, steps, sampler and coalescing shape (image mode,
  its parameters and input sizes: jobs/shape.py), and at most ``max_images``
  images in total (the head job always goes, even if it alone exceeds the limit). Prompts, negative prompts,
  seeds and batch sizes are per item. The CFG scale is per item too when the worker applies guidance per
  image (``per_item_cfg``), as long as the batch is all guided (> 1) or all unguided (1, which drops the
  negative half of the UNet pass); otherwise it must be equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """The columns of a queued job that the selection needs."""

    id: str
    priority: int
    seq: int
    model: str | None
    width: int
    height: int
    steps: int
    sampler: str
    cfg_scale: float
    batch_size: int
    eligible_since: float
    # jobs/shape.py: mode, its parameters and the input image sizes ("" for plain text-to-image).
    shape_key: str = ""

    def shape(self, per_item_cfg: bool) -> tuple[str | None, int, int, int, str, float | bool, str]:
        """Parameters that must be equal for two jobs to share one pipeline call."""
        cfg = self.cfg_scale > 1.0 if per_item_cfg else self.cfg_scale
        return (self.model, self.width, self.height, self.steps, self.sampler, cfg, self.shape_key)


def _choose_head(ordered: Sequence[Candidate], loaded_model: str | None, now: float, max_skip_s: float) -> Candidate:
    first = ordered[0]
    if loaded_model is None or first.model == loaded_model:
        return first
    for cand in ordered[1:]:
        if cand.priority != first.priority:
            break
        # cand would jump the jobs before it, so all of those must still be fresh.
        passed = ordered[: ordered.index(cand)]
        if any(now - p.eligible_since >= max_skip_s for p in passed):
            break
        if cand.model == loaded_model:
            return cand
    return first


def select_batch(
    ordered: Sequence[Candidate],
    *,
    loaded_model: str | None,
    max_images: int,
    coalesce: bool,
    now: float,
    max_skip_s: float,
    per_item_cfg: bool = False,
) -> list[Candidate]:
    """Jobs to claim, head first; ``ordered`` must be in run order (priority desc, seq asc)."""
    if not ordered:
        return []
    head = _choose_head(ordered, loaded_model, now, max_skip_s)
    batch = [head]
    if not coalesce:
        return batch
    images = head.batch_size
    key = head.shape(per_item_cfg)
    blocked = False
    for cand in ordered:
        if cand is head:
            continue
        fits = cand.shape(per_item_cfg) == key and images + cand.batch_size <= max_images
        if fits and not blocked:
            batch.append(cand)
            images += cand.batch_size
        elif now - cand.eligible_since >= max_skip_s:
            # Passed over while stale: nothing after it may jump it.
            blocked = True
    # Jobs before the head were only passed over if they were fresh (see _choose_head); the batch runs
    # head first, then the others in run order.
    return [head, *sorted(batch[1:], key=lambda c: (-c.priority, c.seq))]
