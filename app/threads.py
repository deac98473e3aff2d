"""One thread pool for the blocking work of requests (database round trips, template rendering).

Starlette's `run_in_threadpool` (anyio's `to_thread.run_sync`: a capacity limiter, cancel scopes,
a run-var lookup per call) was an eighth of the app's CPU samples under 100 simulated raters, and
each request made two or three such hops; `asyncio`'s `run_in_executor` does the same job with
less machinery. Paired load runs on a noisy 2-core host showed no measurable gain either way
(bench/README.md, "Rater load"), so keep or drop this on longer measurements.

The pool has as many threads as the engine has connections (`pool_size + max_overflow`), and each
offloaded call holds at most one connection, returned before the call ends; so a thread never
waits on the pool for a connection another queued request holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_threads = 0


def configure(threads: int) -> None:
    """Size the pool (the app factory calls this with the engine's connection count)."""
    global _executor, _threads
    if _executor is not None and _threads == threads:
        return
    old, _executor = _executor, ThreadPoolExecutor(threads, thread_name_prefix="request")
    _threads = threads
    if old is not None:
        old.shutdown(wait=False)


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn(*args, **kwargs)` in the request pool, with this task's context variables."""
    if _executor is None:
        configure(8)
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor, call)


def offloaded(handler: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A blocking route handler, run in the request pool: FastAPI sees an async function with the
    handler's signature (`functools.wraps`), so it neither sends it through anyio's pool nor
    loses its parameters."""

    @functools.wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await in_thread(handler, *args, **kwargs)

    return run
