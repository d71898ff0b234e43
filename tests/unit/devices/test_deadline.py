"""Request deadlines on one timer per connection (gateway.devices.deadline): asyncio.timeout's
rules (timeout vs a cancellation from elsewhere, a dropped cancellation withdrawn), one timer for
back-to-back requests, none left on an idle connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop

from gateway.devices.deadline import Deadlines


def run(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def request(d: Deadlines, timeout_s: float, answer: asyncio.Future[int]) -> int:
    """What ModbusConnection does around one request."""
    task = asyncio.current_task()
    assert task is not None
    d.start(task, timeout_s)  # type: ignore[arg-type]
    try:
        result = await answer
    except asyncio.CancelledError as exc:
        if d.stop(cancelled=True):
            raise TimeoutError from exc
        raise
    d.stop(cancelled=False)
    return result


def later(value: int, after_s: float) -> asyncio.Future[int]:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    loop.call_later(after_s, fut.set_result, value)
    return fut


def never() -> asyncio.Future[int]:
    return asyncio.get_running_loop().create_future()


def test_an_answer_in_time_is_returned_and_a_late_one_times_out() -> None:
    async def main() -> None:
        d = Deadlines()
        assert await request(d, 0.5, later(7, 0.001)) == 7
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await request(d, 0.03, never())
        assert 0.025 <= loop.time() - t0 < 0.3
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0  # our own cancellation was withdrawn

    run(main())


def test_back_to_back_requests_each_get_their_own_deadline_from_one_timer() -> None:
    async def main() -> None:
        d = Deadlines()
        loop = asyncio.get_running_loop()
        for _ in range(5):
            await request(d, 0.05, later(1, 0.005))
        handle = d._handle
        t0 = loop.time()
        # the timer armed for an earlier request fires early for this one: re-armed, not expired
        with pytest.raises(TimeoutError):
            await request(d, 0.05, never())
        assert loop.time() - t0 >= 0.049
        assert handle is not None

    run(main())


def test_a_shorter_timeout_after_a_longer_one_moves_the_timer_earlier() -> None:
    async def main() -> None:
        d = Deadlines()
        loop = asyncio.get_running_loop()
        await request(d, 5.0, later(1, 0.001))
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await request(d, 0.02, never())
        assert loop.time() - t0 < 0.5

    run(main())


def test_an_idle_connection_keeps_no_timer() -> None:
    async def main() -> None:
        d = Deadlines()
        await request(d, 5.0, later(1, 0.001))
        assert d._handle is not None  # kept for a request that may follow at once...
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert d._handle is None  # ...and dropped when none did

    run(main())


def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    async def main() -> None:
        d = Deadlines()
        task = asyncio.create_task(request(d, 5.0, never()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


class FakeTask:
    """Counts cancellation requests as asyncio.Task does."""

    def __init__(self) -> None:
        self.requests = 0

    def cancel(self) -> bool:
        self.requests += 1
        return True

    def cancelling(self) -> int:
        return self.requests

    def uncancel(self) -> int:
        self.requests -= 1
        return self.requests


@pytest.mark.parametrize(
    ("other_cancel", "ended_cancelled", "timed_out", "left"),
    [
        (False, True, True, 0),  # only our deadline: a timeout
        (True, True, False, 1),  # someone else's too: theirs wins, ours is withdrawn
        (False, False, False, 0),  # expired, but the request ended anyway: withdrawn
    ],
)
def test_expiry_follows_asyncio_timeout_rules(
    other_cancel: bool, ended_cancelled: bool, timed_out: bool, left: int
) -> None:
    async def main() -> None:
        d = Deadlines()
        task = FakeTask()
        d.start(task, 0.0)  # type: ignore[arg-type]
        while not task.requests:
            await asyncio.sleep(0.001)
        if other_cancel:
            task.cancel()
        assert d.stop(cancelled=ended_cancelled) is timed_out
        assert task.requests == left

    run(main())


def test_a_deadline_that_races_the_answer_is_withdrawn() -> None:
    # The deadline fires in the same iteration as the answer arrives and the awaited code
    # returns the answer anyway (Python 3.11's wait_for): no timeout, and no cancellation left
    # on the task for the caller to mistake for someone else's.
    async def main() -> None:
        d = Deadlines()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[int] = loop.create_future()

        def answer_and_expire() -> None:
            answer.set_result(5)
            d._deadline = loop.time()  # due now, in the same iteration as the answer:
            d._fire()  # cancels the task whose wake-up is already queued

        async def like_wait_for() -> int:
            try:
                return await answer
            except asyncio.CancelledError:
                if answer.done():
                    return answer.result()  # the 3.11 race: cancellation dropped
                raise

        async def one() -> int:
            task = asyncio.current_task()
            assert task is not None
            d.start(task, 5.0)  # type: ignore[arg-type]
            loop.call_soon(answer_and_expire)
            try:
                result = await like_wait_for()
            except asyncio.CancelledError:
                d.stop(cancelled=True)
                raise
            assert d._expired  # the deadline did fire...
            assert not d.stop(cancelled=False)  # ...but it is not a timeout...
            assert task.cancelling() == 0  # ...and its cancellation is withdrawn
            return result

        assert await asyncio.create_task(one()) == 5

    run(main())
