"""The bench's load: a closed loop at a concurrency, or refunds started at a rate."""

from __future__ import annotations

import asyncio

from refunds.bench.phases import gather_limited


def test_a_rate_starts_each_step_on_its_arrival_time_whatever_the_others_do() -> None:
    async def run() -> tuple[float, dict[int, float]]:
        loop = asyncio.get_running_loop()
        started: dict[int, float] = {}
        first = loop.time()

        async def step(index: int) -> None:
            started[index] = loop.time() - first
            await asyncio.sleep(0.5)  # far longer than the gap between arrivals

        await gather_limited(step, 5, concurrency=10, rate=20.0)
        return loop.time() - first, started

    took, started = asyncio.run(run())
    for index, at in started.items():
        assert index / 20.0 <= at < index / 20.0 + 0.1
    assert took < 0.5 + 4 / 20.0 + 0.3  # none waited for an earlier one to finish


def peak_in_flight(count: int, concurrency: int, rate: float | None, hold: float) -> int:
    """The most steps running at once when each takes `hold` seconds."""

    async def run() -> int:
        in_flight = peak = 0

        async def step(index: int) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(hold)
            in_flight -= 1

        await gather_limited(step, count, concurrency, rate)
        return peak

    return asyncio.run(run())


def test_without_a_rate_at_most_concurrency_are_in_flight() -> None:
    assert peak_in_flight(12, concurrency=3, rate=None, hold=0.01) == 3


def test_the_concurrency_still_caps_a_paced_load() -> None:
    assert peak_in_flight(6, concurrency=2, rate=1000.0, hold=0.2) == 2
