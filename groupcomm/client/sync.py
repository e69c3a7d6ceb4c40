"""``SyncConnection``: a blocking wrapper of ``Connection`` for scripts.

It runs a private event loop in a daemon thread and forwards each call to it::

    with SyncConnection(name="bob") as conn:
        conn.join("chat")
        conn.multicast("chat", b"hi")
        event = conn.receive(timeout=5)
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from groupcomm.client.connection import DEFAULT_DAEMON_TIMEOUT_S, Connection
from groupcomm.client.events import Event
from groupcomm.core.service import Service

_T = TypeVar("_T")


class SyncConnection:
    """Blocking twin of ``Connection``; same arguments, same events and errors."""

    def __init__(
        self,
        endpoint: str | None = None,
        name: str = "",
        membership: bool = True,
        *,
        timeout: float = 5.0,
        token: str = "",
        daemon_timeout: float | None = DEFAULT_DAEMON_TIMEOUT_S,
        daemon_cert: str = "",
        cert: str = "",
        key: str = "",
    ) -> None:
        tls = (daemon_cert, cert, key)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="groupcomm-client", daemon=True
        )
        self._thread.start()
        try:  # bad arguments (a tls:// endpoint without daemon_cert...) must not leak the thread
            self._conn: Connection = self._run(
                self._make(endpoint, name, membership, timeout, token, daemon_timeout, tls)
            )
            self._run(self._conn.open())
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _make(
        endpoint: str | None,
        name: str,
        membership: bool,
        timeout: float,
        token: str,
        daemon_timeout: float | None,
        tls: tuple[str, str, str],
    ) -> Connection:
        # built on the loop
        return Connection(
            endpoint,
            name,
            membership,
            timeout=timeout,
            token=token,
            daemon_timeout=daemon_timeout,
            daemon_cert=tls[0],
            cert=tls[1],
            key=tls[2],
        )

    def _run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def private_name(self) -> str:
        return self._conn.private_name

    @property
    def identity(self) -> str:
        return self._conn.identity

    def join(self, group: str, *, since: str | float | datetime.datetime | None = None) -> int:
        return self._run(self._conn.join(group, since=since))

    def leave(self, group: str) -> int:
        return self._run(self._conn.leave(group))

    def multicast(
        self,
        groups: str | Sequence[str],
        payload: bytes,
        service: Service = Service.AGREED,
        msg_type: int = 0,
        self_discard: bool = False,
    ) -> int:
        return self._run(self._conn.multicast(groups, payload, service, msg_type, self_discard))

    def multicast_obj(self, groups: str | Sequence[str], obj: object) -> int:
        return self._run(self._conn.multicast_obj(groups, obj))

    def receive(self, timeout: float | None = None) -> Event:
        """The next event; ``TimeoutError`` after ``timeout`` seconds."""
        return self._run(self._conn.receive(timeout))

    def status(self) -> dict[str, object]:
        return self._run(self._conn.status())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._conn.close(), timeout=5)
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> SyncConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
