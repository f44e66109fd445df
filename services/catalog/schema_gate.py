"""Schema gating: nothing is served until the database holds a schema this code can serve.

Until the schema is known current, each call checks it first, and while it is behind,
calls within a second of a check fail without asking the database again. Once current, it
is never read again: the check costs a call one attribute lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from services.catalog.schema import SchemaNotCurrentError, SchemaState, read_schema_status_with

if TYPE_CHECKING:
    from services.catalog.database import Database
    from services.catalog.schema import SchemaStatus

# While the schema is behind the code, calls within this many seconds of a check fail
# without asking the database again.
_SCHEMA_RECHECK_INTERVAL = 1.0
logger = logging.getLogger("services.catalog")


class SchemaGate:
    def __init__(self, database: Database) -> None:
        self._database = database
        # Set once the database holds a schema this code can serve; never read again after.
        self.status: SchemaStatus | None = None
        self._behind: tuple[float, SchemaStatus] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        """Raise ``SchemaNotCurrentError`` while the schema is behind the code."""
        async with self._lock:
            if self.status is not None:
                return
            if self._behind is not None:
                checked_at, behind = self._behind
                if time.monotonic() - checked_at < _SCHEMA_RECHECK_INTERVAL:
                    raise SchemaNotCurrentError(behind)
            status = await read_schema_status_with(self._database)
            if not status.servable:
                self._behind = (time.monotonic(), status)
                raise SchemaNotCurrentError(status)
            if status.state is SchemaState.AHEAD:
                logger.warning("serving the catalog anyway: %s", status.describe())
            self.status = status
            self._behind = None
