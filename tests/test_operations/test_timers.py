"""A timer that fails is logged and counted, and the worker goes on (left to Faust, it would stop)."""

import logging

from worker.app import survives
from worker.metrics import INTERNAL_ERRORS


async def test_a_failing_timer_is_logged_and_counted_and_runs_again(caplog):
    ticks = []

    @survives
    async def sweep_everything() -> None:
        ticks.append(len(ticks))
        raise RuntimeError("a bug in one tick")

    counted = INTERNAL_ERRORS.labels("sweep_everything")._value.get()
    with caplog.at_level(logging.ERROR):
        await sweep_everything()
        await sweep_everything()
    assert ticks == [0, 1]
    assert INTERNAL_ERRORS.labels("sweep_everything")._value.get() == counted + 2
    assert "sweep_everything failed" in caplog.text and "a bug in one tick" in caplog.text
