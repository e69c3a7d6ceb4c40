"""Wire encodings of the core's data. Imports only ``groupcomm.core`` and ``msgpack``.

``groupcomm.wire.peer`` owns the msgpack codec of the daemon-to-daemon frames
(``groupcomm.core.frames``); the format is specified in ``protocol/frames.md``.
"""

from groupcomm.wire.errors import WireError
from groupcomm.wire.peer import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_PAYLOAD,
    FRAME_TAGS,
    PROTOCOL_VERSION,
    decode_frame,
    encode_frame,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_PAYLOAD",
    "FRAME_TAGS",
    "PROTOCOL_VERSION",
    "WireError",
    "decode_frame",
    "encode_frame",
]
