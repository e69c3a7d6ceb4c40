"""Web access-log lines for the fan-out benchmark, deterministic from a seed, and the frame that
carries one of them.

``AccessLogGenerator`` writes nginx/Apache "combined" lines with the request time appended
(``$request_time``), about 234 bytes on average: client address, a timestamp that advances by
random inter-arrival times, method, path with query, status, bytes, referer and user agent, drawn
with realistic skew (mostly GET, mostly 200, a few popular user agents). The same seed gives the
same lines on every machine and Python version (``random.Random`` seeded with a string).

A frame is ``workload.HEADER`` (``u32 publisher, u32 seq, u64 send time``, CLOCK_MONOTONIC ns,
the header of every ``groupcomm bench`` message) followed by the line: about 250 bytes. The
header is what the consumers need to count lines per publisher and to measure latency; the
line is what a log feed carries. ``seq == END_SEQ`` marks a publisher's end of stream, its time
field holding how many lines it sent. Standard library only: the Redis members import this under
another interpreter (the peer kit's venv).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from groupcomm.benchmark.workload import END_SEQ, HEADER

DEFAULT_POOL = 4096  # distinct lines a publisher generates up front and replays in a cycle
START_EPOCH = 1_796_428_800  # 2026-12-05 00:00:00 UTC: the first line's time

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_METHODS = (("GET", 86), ("POST", 9), ("HEAD", 2), ("PUT", 2), ("DELETE", 1))
_STATUS = ((200, 82), (304, 6), (301, 3), (404, 5), (302, 2), (500, 1), (403, 1))
_SECTIONS = ("products", "category", "cart", "search", "account", "orders", "static", "blog")
_WORDS = (
    "shoes", "running", "winter", "jacket", "kids", "sale", "leather", "boots", "outdoor",
    "travel", "bags", "summer", "linen", "wool", "classic", "sport", "trail", "rain",
)  # fmt: skip
_REFERERS = (
    ("-", 40),
    ("https://www.google.com/", 20),
    ("https://shop.example.com/", 15),
    ("https://shop.example.com/category/{w}", 12),
    ("https://shop.example.com/search?q={w}+{w2}", 8),
    ("https://www.bing.com/search?q={w}+{w2}", 5),
)
_AGENTS = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        34,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        22,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        12,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.81 Mobile Safari/537.36",
        14,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 8),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 6),
    ("curl/8.5.0", 2),
    ("Prometheus/2.54.1", 2),
)


def _weighted(rng: random.Random, table: Sequence[tuple[object, int]]) -> object:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


class AccessLogGenerator:
    """Combined-log-format lines from ``seed`` (any string or int); ``line()`` gives the next."""

    def __init__(self, seed: int | str, rate: float = 1000.0) -> None:
        self._rng = random.Random(f"access-log:{seed}")
        self._t = float(START_EPOCH)
        self._rate = rate  # mean lines per second of the synthetic timestamps

    def _client(self) -> str:
        r = self._rng
        if r.random() < 0.15:  # some IPv6 clients
            a, b, c = (r.randrange(1 << 16) for _ in range(3))
            return f"2001:db8:{a:x}:{b:x}::{c:x}"
        first = r.choice((203, 198, 192, 81, 93, 185))
        return f"{first}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def _path(self) -> str:
        r = self._rng
        section = r.choice(_SECTIONS)
        if section == "static":
            ext = r.choice(("css", "js", "png", "webp", "woff2"))
            return f"/static/{r.choice(('app', 'vendor', 'img'))}/{r.getrandbits(40):010x}.{ext}"
        if section == "search":
            return f"/search?q={r.choice(_WORDS)}+{r.choice(_WORDS)}&page={r.randrange(1, 6)}"
        if section in ("products", "orders"):
            query = f"?ref={r.choice(_WORDS)}&variant={r.randrange(40)}" if r.random() < 0.5 else ""
            return f"/api/v1/{section}/{r.randrange(10_000, 999_999)}{query}"
        return f"/{section}/{r.choice(_WORDS)}-{r.choice(_WORDS)}"

    def line(self) -> bytes:
        r = self._rng
        self._t += r.expovariate(self._rate)
        secs = int(self._t)
        day, rem = divmod(secs - START_EPOCH, 86_400)
        hour, rem = divmod(rem, 3600)
        minute, second = divmod(rem, 60)
        # days from 2026-12-05 on; a benchmark never spans a month boundary that matters here
        stamp = f"{5 + day:02d}/{_MONTHS[11]}/2026:{hour:02d}:{minute:02d}:{second:02d} +0000"
        status = _weighted(r, _STATUS)
        size = 0 if status == 304 else int(r.lognormvariate(8.0, 1.3))
        referer = str(_weighted(r, _REFERERS)).format(w=r.choice(_WORDS), w2=r.choice(_WORDS))
        text = (
            f'{self._client()} - - [{stamp}] "{_weighted(r, _METHODS)} {self._path()} HTTP/1.1" '
            f'{status} {size} "{referer}" "{_weighted(r, _AGENTS)}" {r.expovariate(40.0):.3f}'
        )
        return text.encode()

    def lines(self, count: int) -> list[bytes]:
        return [self.line() for _ in range(count)]


def publisher_lines(seed: int, publisher: int, count: int = DEFAULT_POOL) -> list[bytes]:
    """The pool publisher ``publisher`` replays: its own stream, the same for every system."""
    return AccessLogGenerator(f"{seed}:{publisher}").lines(count)


class FrameMaker:
    """Frames of one publisher: line ``seq`` is ``pool[seq % len(pool)]`` behind the header."""

    __slots__ = ("pool", "publisher")

    def __init__(self, publisher: int, pool: Sequence[bytes]) -> None:
        if not pool:
            raise ValueError("the line pool is empty")
        self.publisher = publisher
        self.pool = tuple(pool)

    def frames(self, seq: int, count: int, now_ns: int) -> list[bytes]:
        """Lines ``seq .. seq + count - 1``, each stamped ``now_ns``."""
        pack, pool, me, n = HEADER.pack, self.pool, self.publisher, len(self.pool)
        return [pack(me, s, now_ns) + pool[s % n] for s in range(seq, seq + count)]

    def end_marker(self, sent: int) -> bytes:
        return HEADER.pack(self.publisher, END_SEQ, sent)


def mean_frame_bytes(pool: Sequence[bytes]) -> float:
    return HEADER.size + sum(map(len, pool)) / max(1, len(pool))
