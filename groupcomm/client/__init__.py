"""The groupcomm client library (asyncio; ``SyncConnection`` for scripts). See docs/client.md."""

from groupcomm.client.connection import (
    DEFAULT_IPC_ENDPOINT,
    DEFAULT_TCP_ENDPOINT,
    AccessDenied,
    AuthenticationFailed,
    Connection,
    ConnectionClosed,
    DaemonLost,
    DaemonNotTrusted,
    DaemonUnavailable,
    GroupcommError,
    SessionRefused,
    connect,
    default_endpoint,
    query_status,
)
from groupcomm.client.events import (
    Event,
    Gap,
    Message,
    RegularView,
    Rejected,
    SelfLeave,
    TransitionalView,
)
from groupcomm.client.sync import SyncConnection
from groupcomm.client.tls import TlsFilesError
from groupcomm.core.service import Service
from groupcomm.gctune import tune_gc

__all__ = [
    "DEFAULT_IPC_ENDPOINT",
    "DEFAULT_TCP_ENDPOINT",
    "AccessDenied",
    "AuthenticationFailed",
    "Connection",
    "ConnectionClosed",
    "DaemonLost",
    "DaemonNotTrusted",
    "DaemonUnavailable",
    "Event",
    "Gap",
    "GroupcommError",
    "Message",
    "RegularView",
    "Rejected",
    "SelfLeave",
    "Service",
    "SessionRefused",
    "SyncConnection",
    "TlsFilesError",
    "TransitionalView",
    "connect",
    "default_endpoint",
    "query_status",
    "tune_gc",
]
