"""Log fan-out benchmark: ``python -m groupcomm.benchmark.fanout`` (docs/performance.md,
"2026-12-05: log fan-out").

Publishers (one per namespace host) replay generated web access-log lines at a given total rate
(or flood); many consumers spread over the hosts deliver them; the command reports the slowest
consumer's lines/s, latency percentiles and loss for groupcomm and, in the same session with the
same job, for Redis pub/sub and Redis Streams; ``--catchup`` adds the time a consumer that was
away needs to catch up from its stored position.

The modules, one job each: ``loglines`` (the lines and their frame), ``pacing`` (when a
publisher sends), ``plan`` (the job and each process's command line), ``histogram`` and
``tally`` (what a consumer counts, and the result files), ``gc_member`` / ``redis_member`` (the
processes; ``resp`` is the Redis members' minimal client; ``gc_member`` also resumes from a
position for the catch-up), ``redisserver`` (the Redis server of a run), ``runner`` (one
system's run), ``aggregate`` (results to a record), ``report`` (tables, JSON lines) and
``command`` (the CLI).

Nothing here is imported by the rest of the package; the member modules ``redis_member`` and
what it imports stay within the standard library and ``hiredis``, so they run under the peer
kit's interpreter.
"""
