"""A deadline for each /v1 request: past it the client gets 503 ``unavailable``, not a hang.

Cloud Run cuts requests at the service's timeout with a bare 504; answering earlier, in our
error shape with Retry-After, lets clients back off. Storage calls have their own limits (the
BigQuery job timeout); this one bounds the whole request. A storage call running in a worker
thread cannot be interrupted from here: the thread finishes on its own and its result is
dropped, the client is answered at once.

Every request has the same timeout, so deadlines expire in the order requests arrived: one
timer, armed for the oldest request still running, serves them all. ``asyncio.timeout`` per
request cost a timer handle pushed on (and cancelled in) the loop's heap for each one, a tenth
of a request's CPU once the store answers from memory. Expiry is the same: at the deadline the
task is cancelled and the cancellation turned into the 503, as ``asyncio.timeout`` does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aeroflow.api.errors import ErrorCode, error_response

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS: Final = 5


class _Watched:
    """One request under its deadline."""

    __slots__ = ("_settled", "cancelling", "deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[object], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        # Cancellations requested before ours (e.g. server shutdown) are not ours to absorb.
        self.cancelling = task.cancelling()
        self.expired = False
        self._settled = False

    def settle(self) -> int:
        """Withdraw the cancellation the deadline requested, once; returns the task's
        remaining cancellation requests, as ``Task.uncancel`` does."""
        if self._settled:
            return self.task.cancelling()
        self._settled = True
        return self.task.uncancel()


class Deadlines:
    """Requests in arrival order (which is deadline order) and one timer for the oldest."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._running: dict[_Watched, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def watch(self, task: asyncio.Task[object]) -> _Watched:
        loop = task.get_loop()
        watched = _Watched(task, loop.time() + self.seconds)
        self._running[watched] = None
        if self._timer is None or self._timer_loop is not loop:
            self._arm(loop, watched.deadline)
        return watched

    def release(self, watched: _Watched) -> None:
        # The timer stays armed: when it fires it finds nothing due and re-arms for the oldest.
        self._running.pop(watched, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer = loop.call_at(when, self._expire, loop, when)
        self._timer_loop = loop

    def _expire(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer = None
        # The loop runs a timer up to its clock resolution early; the deadline it was armed
        # for counts as reached.
        now = max(loop.time(), when)
        due: list[_Watched] = []
        for watched in self._running:
            if watched.deadline > now:
                self._arm(loop, watched.deadline)
                break
            due.append(watched)
        for watched in due:
            del self._running[watched]
            if watched.task.get_loop() is loop and not watched.task.done():
                watched.expired = True
                watched.task.cancel()


class RequestTimeoutMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        seconds: float,
        path_prefix: str = "/v1/",
        deadlines: Deadlines | None = None,
    ) -> None:
        """``deadlines``: the timer to share with the read lane, which answers ahead of this
        layer (aeroflow.api.middleware.lane); its own by default."""
        self.app = app
        self.seconds = seconds
        self.path_prefix = path_prefix
        self._deadlines = deadlines or Deadlines(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefix):
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_and_track(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        task = asyncio.current_task()
        if task is None:  # not run by a task (never under a server): no deadline to keep
            await self.app(scope, receive, send)
            return
        watched = self._deadlines.watch(task)
        try:
            await self.app(scope, receive, send_and_track)
        except asyncio.CancelledError as exc:
            # As asyncio.timeout: only a cancellation of ours, with no other one pending,
            # becomes the deadline's answer; any other keeps cancelling the task.
            if not watched.expired or watched.settle() > watched.cancelling:
                raise
            if response_started:
                raise TimeoutError from exc
        else:
            return
        finally:
            self._deadlines.release(watched)
            if watched.expired:  # also when the app ended otherwise than by our cancel
                watched.settle()
        # The access log line of this request names its route; no raw path here.
        logger.warning("request exceeded its %g s deadline", self.seconds)
        response = error_response(
            503,
            ErrorCode.UNAVAILABLE,
            f"the request took longer than {self.seconds:g} s; retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        await response(scope, receive, send)
