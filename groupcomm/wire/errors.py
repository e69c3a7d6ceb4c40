"""The one exception type of the wire layer: everything that is not a valid frame."""

from __future__ import annotations


class WireError(ValueError):
    """Bytes that do not decode to a valid frame, or a frame that cannot be encoded.

    ``frame`` names the frame type when it is known (``"Data"``) and ``field`` the offending
    field path within it (``"msgs[3].service"``); either may be ``None``.
    """

    def __init__(self, message: str, *, frame: str | None = None, field: str | None = None):
        super().__init__(message)
        self.frame = frame
        self.field = field
