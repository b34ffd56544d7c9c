"""The one sampler resolver (ablerefusal.samplers): ids, A1111 names, and A1111 name + scheduler pairs."""

from __future__ import annotations

import pytest

from ablerefusal.protocol import SamplerInfo
from ablerefusal.samplers import SAMPLERS, SamplerError, find_scheduler, resolve_sampler, supported_schedulers


@pytest.mark.parametrize(
    ("name", "scheduler", "expected"),
    [
        ("Euler a", None, "euler_a"),
        ("euler a", "Automatic", "euler_a"),
        ("DPM++ 2M Karras", None, "dpmpp_2m_karras"),
        ("DPM++ 2M", "karras", "dpmpp_2m_karras"),
        ("DPM++ 2M", "Karras", "dpmpp_2m_karras"),
        ("DPM++ 2M Karras", "karras", "dpmpp_2m_karras"),
        ("DPM++ 2M SDE", "karras", "dpmpp_2m_sde_karras"),
        ("DPM++ 2M", "uniform", "dpmpp_2m"),
        ("LMS", "Karras", "lms_karras"),
        ("dpmpp_2m", "karras", "dpmpp_2m_karras"),
        ("UniPC", None, "unipc"),
        ("DPM++ 2M", "exponential", "dpmpp_2m_exponential"),
        ("DPM++ 2M SDE", "Exponential", "dpmpp_2m_sde_exponential"),
        ("Euler", "sgm_uniform", "euler_sgm_uniform"),
        ("DPM++ 2M", "SGM Uniform", "dpmpp_2m_sgm_uniform"),
        ("Euler", "Karras", "euler_karras"),
    ],
)
def test_a1111_names_resolve_to_our_ids(name: str, scheduler: str | None, expected: str) -> None:
    assert resolve_sampler(name, scheduler).id == expected


def test_unknown_sampler_names_the_field_and_lists_valid_names() -> None:
    with pytest.raises(SamplerError) as err:
        resolve_sampler("Foo Sampler", None, field="sampler_name")
    assert err.value.field == "sampler_name"
    assert "euler_a" in err.value.available and "'Foo Sampler'" in err.value.message


def test_unknown_scheduler_is_refused() -> None:
    with pytest.raises(SamplerError) as err:
        resolve_sampler("Euler", "wobbly")
    assert err.value.field == "scheduler" and "karras" in err.value.message


def test_schedule_the_table_lacks_is_refused_naming_samplers_that_have_it() -> None:
    with pytest.raises(SamplerError) as err:
        resolve_sampler("UniPC", "karras")
    assert err.value.field == "scheduler"
    assert "DPM++ 2M Karras" in err.value.available


def test_combined_name_conflicting_with_scheduler_is_refused() -> None:
    with pytest.raises(SamplerError, match="conflicts"):
        resolve_sampler("DPM++ 2M Karras", "exponential")


# A table with the schedule variants diffusers can express; whatever the worker lists becomes reachable.
VARIANTS = [
    SamplerInfo(id="euler", name="Euler"),
    SamplerInfo(id="dpmpp_2m", name="DPM++ 2M"),
    SamplerInfo(id="dpmpp_2m_exponential", name="DPM++ 2M Exponential"),
    SamplerInfo(id="euler_sgm_uniform", name="Euler SGM Uniform"),
]


@pytest.mark.parametrize(
    ("name", "scheduler", "expected"),
    [
        ("DPM++ 2M", "exponential", "dpmpp_2m_exponential"),
        ("DPM++ 2M", "Exponential", "dpmpp_2m_exponential"),
        ("Euler", "sgm_uniform", "euler_sgm_uniform"),
        ("Euler", "SGM Uniform", "euler_sgm_uniform"),
        ("euler", "sgm_uniform", "euler_sgm_uniform"),
    ],
)
def test_split_form_reaches_every_variant_in_the_table(name: str, scheduler: str, expected: str) -> None:
    assert resolve_sampler(name, scheduler, VARIANTS).id == expected


def test_supported_schedulers_follow_the_table() -> None:
    assert [s.name for s in supported_schedulers(VARIANTS)] == ["automatic", "uniform", "exponential", "sgm_uniform"]
    names = [s.name for s in supported_schedulers(SAMPLERS)]
    assert {"automatic", "uniform", "karras", "exponential", "sgm_uniform"} <= set(names)
    # Every schedule listed is reachable from some base sampler in the split form.
    for name in names:
        assert any(_resolves(base, name) for base in ("DPM++ 2M", "Euler", "LMS")), name


def _resolves(base: str, scheduler: str) -> bool:
    try:
        resolve_sampler(base, scheduler)
    except SamplerError:
        return False
    return True


def test_find_scheduler_accepts_name_and_label() -> None:
    sgm = find_scheduler("sgm_uniform")
    assert sgm is not None and find_scheduler("SGM Uniform") == sgm
    assert find_scheduler("nope") is None
