"""Per-row guidance (worker/engine/guidance.py): each row of a coalesced call is scaled exactly as the same row
alone would be by diffusers' ``guidance_scale * (text - uncond)``, in every dtype the worker runs."""

from __future__ import annotations

import pytest
import torch

from ablerefusal.worker.engine.guidance import RowGuidance, guidance_for

# 7.3 and 9.1 are not exact in float16 or bfloat16: a scale rounded to the tensor's dtype would show.
SCALES = [5.0, 7.3, 9.1, 7.5]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_each_row_is_scaled_as_alone_bit_for_bit(dtype: torch.dtype) -> None:
    delta = torch.randn(len(SCALES), 4, 8, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    rows = RowGuidance(SCALES, torch.device("cpu"))
    together = rows * delta
    assert together.dtype == dtype
    for i, scale in enumerate(SCALES):
        # What diffusers computes for a call of this row alone: the tensor times a Python float.
        alone = scale * delta[i : i + 1]
        assert torch.equal(together[i : i + 1], alone), (dtype, scale)
    assert torch.equal(delta * rows, together)  # the pipelines write it either way round


def test_it_answers_is_cfg_on_and_refuses_what_it_cannot_do() -> None:
    rows = RowGuidance(SCALES, torch.device("cpu"))
    assert rows > 1 and not rows > 5.0  # diffusers asks `guidance_scale > 1`
    with pytest.raises(ValueError, match="every scale > 1"):
        RowGuidance([7.0, 1.0], torch.device("cpu"))
    with pytest.raises(ValueError, match="batch of 2"):
        rows * torch.zeros(2, 4)
    assert guidance_for([7.0, 7.0], torch.device("cpu")) == 7.0  # one scale: the plain float, as before
    assert isinstance(guidance_for([7.0, 9.0], torch.device("cpu")), RowGuidance)
