"""Large messages: cutting a data message into ``FRAGMENT`` messages at the sender, and putting
them back together before delivery (``protocol/services.md`` section 7, rule ``SVC-FRAG``).

Owns the fragment header, ``fragment`` (the sender's side: the next fragment of the message at
the head of ``pending``) and ``Reassembly`` (the receiver's side: one unfinished message per
sender daemon). It does not decide when a fragment is stamped (``Node._stamp_pending``: the send
window) nor when unfinished messages are discarded (``Node.install_view``: at every regular
install, which is what makes the decision identical at every daemon moving together).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from groupcomm.core.frames import Msg, new_msg
from groupcomm.core.service import Kind

FRAGMENT = int(Kind.FRAGMENT)
_HEADER = struct.Struct(">IIQ")  # index, count, total payload length of the whole message
HEADER = _HEADER.size  # 16 bytes before every fragment's chunk


def fragment_count(total: int, fragment_bytes: int) -> int:
    return max(1, -(-total // fragment_bytes))


def fragment(msg: Msg, index: int, fragment_bytes: int) -> tuple[Msg, bool]:
    """Fragment ``index`` of the data message ``msg`` and whether it is the last one."""
    payload = msg.payload
    total = len(payload)
    count = fragment_count(total, fragment_bytes)
    start = index * fragment_bytes
    chunk = memoryview(payload)[start : start + fragment_bytes]
    body = _HEADER.pack(index, count, total) + chunk  # one copy of the chunk
    frag = new_msg(FRAGMENT, msg.conn, msg.service, msg.groups, msg.msg_type, body)
    return frag, index == count - 1


def chunk_len(frag: Msg) -> int:
    """Payload bytes of the whole message that ``frag`` carries (what its sender is credited)."""
    return max(0, len(frag.payload) - HEADER)


def delivery(frag: Msg) -> tuple[int, bool]:
    """What delivering ``frag`` in order hands the clients, as far as its header says: at its
    message's last fragment ``(the whole message's length, True)``, else ``(its chunk's
    length, False)`` (the chunk is only held for reassembly)."""
    if len(frag.payload) < HEADER:
        return 0, False
    index, count, total = _HEADER.unpack_from(frag.payload)
    if index == count - 1:
        return int(total), True
    return len(frag.payload) - HEADER, False


def is_last(frag: Msg) -> bool:
    """``frag`` is the last fragment of its message (the trace notes its send there)."""
    if len(frag.payload) < HEADER:
        return False
    index, count, _ = _HEADER.unpack_from(frag.payload)
    return bool(index == count - 1)


@dataclass(slots=True)
class _Partial:
    conn: str
    count: int
    total: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class Reassembly:
    """Unfinished large messages, at most one per sender daemon (a sender stamps nothing else
    between a message's first and last fragment). ``add`` returns the whole message at its last
    fragment; a fragment that does not continue its sender's message drops it (counted)."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._partial: dict[str, _Partial] = {}  # sender token -> its unfinished message
        self.dropped = 0  # messages dropped: malformed, out of turn, or cut by a view change
        self.buffered = 0  # payload bytes held in unfinished messages

    def add(self, sender: str, frag: Msg) -> Msg | None:
        body = frag.payload
        if len(body) < HEADER:
            self._drop(sender)
            return None
        index, count, total = _HEADER.unpack_from(body)
        chunk = body[HEADER:]
        part = self._partial.get(sender)
        if index == 0:
            if part is not None:  # never from a correct sender: its last message was cut
                self._drop(sender)
            if total > self.max_message_bytes or count < 1 or (len(chunk) == 0 and total):
                self.dropped += 1
                return None
            part = self._partial[sender] = _Partial(conn=frag.conn, count=count, total=total)
        elif (
            part is None
            or index != len(part.chunks)
            or (count, total, frag.conn) != (part.count, part.total, part.conn)
        ):
            self._drop(sender)
            if part is None:
                self.dropped += 1
            return None
        part.chunks.append(chunk)
        part.size += len(chunk)
        self.buffered += len(chunk)
        if part.size > part.total:
            self._drop(sender)
            return None
        if index < count - 1:
            return None
        del self._partial[sender]
        self.buffered -= part.size
        if part.size != part.total:
            self.dropped += 1
            return None
        payload = b"".join(part.chunks)
        part.chunks.clear()
        return new_msg(int(Kind.DATA), frag.conn, frag.service, frag.groups, frag.msg_type, payload)

    def discard_all(self) -> int:
        """Drop every unfinished message (a regular view is installed: SVC-FRAG step 2)."""
        n = len(self._partial)
        self.dropped += n
        self._partial.clear()
        self.buffered = 0
        return n

    def unfinished(self) -> int:
        return len(self._partial)

    def _drop(self, sender: str) -> None:
        part = self._partial.pop(sender, None)
        if part is not None:
            self.buffered -= part.size
            self.dropped += 1
