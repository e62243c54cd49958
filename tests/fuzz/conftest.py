"""Shared pieces of the fuzzing suite: example counts, the time and memory bound.

Every property runs twice: a few hundred examples in the default run, and thousands
under ``-m fuzz`` (``python -m pytest -m fuzz tests/fuzz``). Each asserts the same
contract: for any input, a clear project error or success, never another exception,
within a time bound per example and a memory bound over the run.
"""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings

#: Examples per property in the default run and under ``-m fuzz``.
DEFAULT_EXAMPLES = 150
#: Examples of the slower city readers in the default run (osmnx reads each file).
CITY_EXAMPLES = 40
FUZZ_EXAMPLES = 3000

#: Seconds one example may take (generous: the test machine is shared).
EXAMPLE_SECONDS = 5.0
#: Growth of the process's peak memory a whole property may cause, MB.
PEAK_GROWTH_MB = 300.0

#: The two runs of each property.
RUNS = pytest.mark.parametrize(
    "examples",
    [
        pytest.param(DEFAULT_EXAMPLES, id="default"),
        pytest.param(FUZZ_EXAMPLES, id="thousands", marks=pytest.mark.fuzz),
    ],
)


def fuzz_settings(examples: int, **kw) -> settings:
    """Hypothesis settings of one property run: no deadline flakiness, no database."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=examples <= DEFAULT_EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **kw,
    )


def peak_mb() -> float:
    """The process's peak resident memory so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def bounded(what: str, seconds: float = EXAMPLE_SECONDS):
    """Fail if the block takes longer than ``seconds``."""
    t0 = time.perf_counter()
    yield
    took = time.perf_counter() - t0
    assert took < seconds, f"{what} took {took:.2f} s (bound {seconds} s)"


@pytest.fixture
def memory_bound():
    """Fail if the test raises the process's peak memory by more than PEAK_GROWTH_MB."""
    before = peak_mb()
    yield
    grew = peak_mb() - before
    assert grew < PEAK_GROWTH_MB, f"peak memory grew by {grew:.0f} MB (bound {PEAK_GROWTH_MB:.0f} MB)"


#: The two runs of a slower property (the city readers).
CITY_RUNS = pytest.mark.parametrize(
    "examples",
    [
        pytest.param(CITY_EXAMPLES, id="default"),
        pytest.param(FUZZ_EXAMPLES // 3, id="thousands", marks=pytest.mark.fuzz),
    ],
)
