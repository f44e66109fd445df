"""Work a worker keeps doing in the background while its app serves (publishing, handing over)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine
    from typing import Any


@contextlib.asynccontextmanager
async def running_alongside(work: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run ``work`` (a loop) as a task for the block's duration; cancel it, and wait, at its end."""
    task = asyncio.get_running_loop().create_task(work())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
