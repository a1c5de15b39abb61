"""The patch project's own checks of parallel MPS inference, run by the `tests` stage next to test_mps.py.

Each test runs real work on the MPS device from several Python threads at once and compares it with the CPU.
Without a usable MPS device every test is skipped, and a stage that ran only skipped tests has not passed.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

needs_mps = pytest.mark.skipif(not torch.backends.mps.is_available(), reason="MPS is not available")
pytestmark = needs_mps


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run work(0..count-1) on `count` threads started together; return what they raised."""
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def body(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as exc:  # collected and re-raised by the test, not swallowed
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 16)).eval()


@pytest.mark.parametrize(("threads", "iterations"), [(8, 50), (31, 20)])
def test_shared_model_gives_cpu_results_on_every_thread(threads: int, iterations: int) -> None:
    cpu = small_model()
    gpu = copy.deepcopy(cpu).to("mps")
    wrong: list[tuple[int, int]] = []

    def work(index: int) -> None:
        with torch.no_grad():
            for i in range(iterations):
                x = torch.full((4, 64), 0.01 * (index + 1) + 0.001 * i)
                if not torch.allclose(gpu(x.to("mps")).cpu(), cpu(x), rtol=1e-3, atol=1e-3):
                    wrong.append((index, i))

    assert run_threads(threads, work) == []
    assert wrong == []


def test_each_thread_gets_its_own_result() -> None:
    # Inputs differ per thread by a constant; a result delivered to the wrong thread would not match.
    results: dict[int, torch.Tensor] = {}

    def work(index: int) -> None:
        x = torch.full((256,), float(index), device="mps")
        results[index] = (x * 2 + 1).cpu()

    assert run_threads(16, work) == []
    for index, value in results.items():
        assert torch.equal(value, torch.full((256,), float(2 * index + 1)))


def test_matmul_chains_from_many_threads() -> None:
    torch.manual_seed(1)
    a = torch.rand(128, 128)
    want = a @ a @ a

    def work(_: int) -> None:
        on_gpu = a.to("mps")
        got = (on_gpu @ on_gpu @ on_gpu).cpu()
        assert torch.allclose(got, want, rtol=1e-3, atol=1e-2)

    assert run_threads(12, work) == []


def test_synchronize_while_other_threads_submit() -> None:
    def work(index: int) -> None:
        for _ in range(20):
            if index % 2:
                torch.mps.synchronize()
            else:
                (torch.ones(64, 64, device="mps") @ torch.ones(64, 64, device="mps")).sum().item()

    assert run_threads(8, work) == []


def test_convolution_in_parallel() -> None:
    torch.manual_seed(2)
    conv_cpu = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1).eval()
    conv_gpu = copy.deepcopy(conv_cpu).to("mps")
    image = torch.rand(2, 3, 32, 32)
    want = conv_cpu(image)

    def work(_: int) -> None:
        with torch.no_grad():
            for _ in range(10):
                assert torch.allclose(conv_gpu(image.to("mps")).cpu(), want, rtol=1e-3, atol=1e-3)

    assert run_threads(8, work) == []


def test_device_still_works_after_parallel_work() -> None:
    assert run_threads(8, lambda i: torch.ones(1024, device="mps").sum().item()) == []
    assert torch.ones(3, device="mps").add(1).cpu().tolist() == [2.0, 2.0, 2.0]
