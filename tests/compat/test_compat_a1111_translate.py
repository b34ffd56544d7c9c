"""A1111 txt2img → jobs, and the info/progress A1111 clients read back."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ablerefusal.gateway.compat.a1111_models import Txt2ImgRequest
from ablerefusal.gateway.compat.a1111_state import A1111Run, progress_of
from ablerefusal.gateway.compat.a1111_translate import (
    Txt2ImgPlan,
    build_info,
    find_checkpoint,
    model_item,
    plan_txt2img,
    sampler_items,
    scheduler_items,
)
from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.schemas import GenerateRequest, Job, JobResult, JobStatus
from ablerefusal.protocol import SEED_MAX, ModelFamily, ModelFormat, ModelInfo
from ablerefusal.samplers import SAMPLERS

SHA = "ab" * 32
MODELS = [
    ModelInfo(id="tiny-a", name="Tiny A", family=ModelFamily.sd15, format=ModelFormat.diffusers),
    ModelInfo(id="tiny-b", name="Tiny B", family=ModelFamily.sd15, format=ModelFormat.single_file, sha256=SHA),
]


def _plan(**fields: object) -> tuple[Txt2ImgRequest, Txt2ImgPlan]:
    req = Txt2ImgRequest.model_validate({"prompt": "a fox", **fields})
    return req, plan_txt2img(req, SAMPLERS, MODELS, MODELS[0], random.Random(7))


def test_n_iter_times_batch_size_becomes_n_iter_jobs_with_consecutive_seeds() -> None:
    _, plan = _plan(seed=100, n_iter=3, batch_size=2, sampler_name="DPM++ 2M", scheduler="karras", steps=4)
    assert [j.seed for j in plan.jobs] == [100, 102, 104]
    assert plan.seeds == [100, 101, 102, 103, 104, 105]
    assert all(j.batch_size == 2 and j.sampler == "dpmpp_2m_karras" and j.steps == 4 for j in plan.jobs)
    assert {j.model for j in plan.jobs} == {"tiny-a"}


def test_random_seed_is_fixed_once_so_all_seeds_are_distinct() -> None:
    _, plan = _plan(n_iter=2, batch_size=2)
    seeds = plan.seeds
    assert len(set(seeds)) == 4 and seeds == list(range(seeds[0], seeds[0] + 4))
    assert seeds[0] >= 0 and seeds[-1] <= SEED_MAX


def test_seed_that_would_overflow_is_a_field_error() -> None:
    with pytest.raises(CompatFieldError) as err:
        _plan(seed=SEED_MAX, batch_size=2)
    assert err.value.field == "seed"


@pytest.mark.parametrize("value", ["tiny-b", "Tiny B", f"tiny-b [{SHA[:10]}]", SHA, SHA[:10]])
def test_override_checkpoint_accepts_title_name_and_hashes(value: str) -> None:
    _, plan = _plan(override_settings={"sd_model_checkpoint": value})
    assert plan.model.id == "tiny-b"
    assert find_checkpoint(MODELS, value) == MODELS[1]


def test_unknown_checkpoint_names_the_override_field() -> None:
    with pytest.raises(CompatFieldError) as err:
        _plan(override_settings={"sd_model_checkpoint": "nope"})
    assert err.value.field == "override_settings.sd_model_checkpoint"
    assert err.value.available == ["tiny-a", f"tiny-b [{SHA[:10]}]"]


def test_old_sampler_index_field_is_honoured_and_named_in_errors() -> None:
    _, plan = _plan(sampler_index="Euler a")
    assert plan.jobs[0].sampler == "euler_a"
    with pytest.raises(CompatFieldError) as err:
        _plan(sampler_index="bogus")
    assert err.value.field == "sampler_index"


def test_default_sampler_is_a1111s_euler() -> None:
    _, plan = _plan()
    assert plan.jobs[0].sampler == "euler" and plan.jobs[0].steps == 50


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("steps", 151),
        ("width", 65),
        ("height", 4096),
        ("cfg_scale", 0.5),
        ("batch_size", 5),
        ("n_iter", 0),
        ("n_iter", 17),
        ("seed", -2),
        ("prompt", ""),
    ],
)
def test_out_of_range_fields_fail_validation_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        Txt2ImgRequest.model_validate({"prompt": "x", field: value})
    assert err.value.errors()[0]["loc"] == (field,)


def test_unknown_a1111_fields_are_accepted_and_echoed() -> None:
    req = Txt2ImgRequest.model_validate({"prompt": "x", "enable_hr": True, "restore_faces": True})
    assert req.model_dump()["enable_hr"] is True


def _result(seed: int, index: int) -> JobResult:
    return JobResult(image_url=f"/outputs/j/{index}.png", seed=seed, index=index, infotext=f"x\nSeed: {seed}")


def test_info_holds_what_a1111_clients_read() -> None:
    req, plan = _plan(seed=5, n_iter=2, sampler_name="DPM++ 2M Karras", width=64, height=64, steps=2)
    results = [_result(5, 0), _result(6, 0)]
    info = build_info(req, plan, results, datetime(2024, 1, 2, 3, 4, 5))
    json.dumps(info)
    assert info["all_seeds"] == [5, 6] and info["seed"] == 5 and info["all_prompts"] == ["a fox", "a fox"]
    assert info["sampler_name"] == "DPM++ 2M Karras" and info["extra_generation_params"] == {"Schedule type": "Karras"}
    assert (info["width"], info["height"], info["steps"], info["batch_size"]) == (64, 64, 2, 1)
    assert info["sd_model_name"] == "tiny-a" and info["job_timestamp"] == "20240102030405"
    assert info["infotexts"] == ["x\nSeed: 5", "x\nSeed: 6"]
    assert len(info["all_subseeds"]) == 2 and info["subseed"] == info["all_subseeds"][0]


def test_info_after_a_skip_lists_only_the_images_returned() -> None:
    req, plan = _plan(seed=10, n_iter=3)
    info = build_info(req, plan, [_result(10, 0), _result(12, 0)], datetime.now())
    assert info["all_seeds"] == [10, 12]
    assert info["all_subseeds"] == [plan.subseeds[0], plan.subseeds[2]]


def test_lists_shapes() -> None:
    item = model_item(MODELS[1])
    assert (item.title, item.model_name, item.hash, item.sha256) == (
        f"tiny-b [{SHA[:10]}]",
        "tiny-b",
        SHA[:10],
        SHA,
    )
    assert model_item(MODELS[0]).title == "tiny-a" and model_item(MODELS[0]).hash is None
    samplers = {s.name: s for s in sampler_items(SAMPLERS)}
    assert "euler_a" in samplers["Euler a"].aliases
    assert samplers["DPM++ 2M Karras"].options == {"scheduler": "karras"}
    schedulers = {s.name: s for s in scheduler_items(SAMPLERS)}
    assert schedulers["karras"].label == "Karras" and schedulers["karras"].default_rho == 7.0
    assert schedulers["sgm_uniform"].label == "SGM Uniform"


def _job(job_id: str, status: JobStatus, step: int = 0, total: int = 0, preview: str | None = None) -> Job:
    return Job(
        id=job_id,
        status=status,
        progress=100 * step / total if total else 0,
        step=step,
        total_steps=total,
        created_at=datetime.now(UTC),
        request=GenerateRequest(prompt="x"),
        preview=preview,
        queue_position=1 if status is JobStatus.queued else None,
    )


def test_progress_counts_finished_iterations_and_the_running_fraction() -> None:
    run = A1111Run(job_ids=["a", "b"], started_at=datetime(2024, 1, 1), started_mono=100.0)
    jobs = [
        _job("a", JobStatus.completed),
        _job("b", JobStatus.running, 5, 10, "data:image/jpeg;base64,QUJD"),
    ]
    p = progress_of(run, jobs, now_mono=130.0)
    assert p.progress == pytest.approx(0.75)
    assert p.eta_relative == pytest.approx(10.0)  # 30 s for 75 %: 10 s left
    assert (p.state.job_count, p.state.job_no, p.state.sampling_step, p.state.sampling_steps) == (2, 1, 5, 10)
    assert p.current_image == "QUJD" and p.textinfo == "Sampling step 5/10"


def test_progress_of_a_queued_request_is_zero_and_says_it_waits() -> None:
    run = A1111Run(job_ids=["a"], started_at=datetime(2024, 1, 1), started_mono=0.0)
    p = progress_of(run, [_job("a", JobStatus.queued)], now_mono=5.0)
    assert p.progress == 0 and p.current_image is None and p.textinfo == "Waiting in queue (position 1)"
