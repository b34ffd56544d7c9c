"""GPU discovery for `--workers auto` without torch: CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`.

There is no GPU here, so nvidia-smi's output is a recorded listing (what the driver prints on a 3-GPU box):
the one thing stubbed, since we cannot run NVIDIA's driver tool on this machine.
"""

from __future__ import annotations

import pytest

from ablerefusal.gateway.workers.gpus import LocalWorkerPlan, plan_local_workers, visible_gpus

SMI_3_GPUS = """GPU 0: NVIDIA H200 (UUID: GPU-6f2a1b8e-0000-0000-0000-000000000000)
GPU 1: NVIDIA H200 (UUID: GPU-6f2a1b8e-1111-1111-1111-111111111111)
  MIG 1g.18gb     Device  0: (UUID: MIG-0a0a0a0a-0000-0000-0000-000000000000)
GPU 2: NVIDIA H200 (UUID: GPU-6f2a1b8e-2222-2222-2222-222222222222)
"""


def test_nvidia_smi_listing_gives_the_indices() -> None:
    assert visible_gpus({}, lambda: SMI_3_GPUS) == ["0", "1", "2"]


def test_cuda_visible_devices_wins_over_nvidia_smi() -> None:
    def never() -> str:
        raise AssertionError("nvidia-smi must not run when CUDA_VISIBLE_DEVICES is set")

    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3, 1"}, never) == ["3", "1"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-abc"}, never) == ["GPU-abc"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, never) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}, never) == []


def test_no_driver_means_no_gpus() -> None:
    assert visible_gpus({}, lambda: None) == []


def test_auto_is_one_worker_per_gpu_each_pinned() -> None:
    plans = plan_local_workers("auto", None, "auto", discover=lambda: ["0", "1", "2"])
    assert plans == [LocalWorkerPlan("0", "cuda"), LocalWorkerPlan("1", "cuda"), LocalWorkerPlan("2", "cuda")]


def test_auto_without_gpus_is_one_cpu_worker() -> None:
    assert plan_local_workers("auto", None, "auto", discover=list) == [LocalWorkerPlan(None, "auto")]


def test_explicit_gpus_and_counts() -> None:
    def never() -> list[str]:
        raise AssertionError("explicit --gpus needs no discovery")

    assert plan_local_workers("auto", ["0", "3"], "auto", discover=never) == [
        LocalWorkerPlan("0", "cuda"),
        LocalWorkerPlan("3", "cuda"),
    ]
    # More workers than GPUs share them round-robin; a plain count without --gpus pins nothing.
    assert [p.gpu for p in plan_local_workers(3, ["0", "1"], "cuda", discover=never)] == ["0", "1", "0"]
    assert plan_local_workers(2, None, "cpu", discover=never) == [LocalWorkerPlan(None, "cpu")] * 2


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_a_non_cuda_device_is_kept(device: str) -> None:
    assert plan_local_workers("auto", ["0"], device) == [LocalWorkerPlan("0", device)]
