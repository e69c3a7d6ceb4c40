"""``groupcomm bench``: measure a live cluster with the peer kit's workload.

The workload is the one of the peer benchmark kit (``shared/peers``), so that our figures can be
put next to corosync, Spread, Redis and raw pyzmq: member processes with a common start time, a
16-byte header (sender, seq, send time) per message, throughput as the slowest receiver's rate
in a fixed window, latency at a fixed offered rate. The modules: ``workload`` (parameters,
placement, header), ``recorder`` (what a receiver counts), ``member`` / ``zmq_member`` (the
member processes), ``startsync`` (the common start), ``members`` (the member processes as a
group), ``placement`` (loopback or a namespace LAN, TCP mesh or epgm), ``procstat`` (/proc
sampling), ``wirecost`` (bytes on the wire per message and daemon), ``stats`` (pure
statistics), ``analysis`` (member results -> one run record), ``runner`` (one run), ``report``
(table, JSON, progress) and ``command`` (the CLI). The grid sweep for the published tables is
``sweep`` (``python -m groupcomm.benchmark.sweep``), with ``sweepgrid`` (its runs and time
estimate), ``sweepreport`` (markdown tables, latency knee, memory bound) and ``plot`` (the
optional matplotlib plot). ``corebench`` (``python -m groupcomm.benchmark.corebench``) measures
the protocol core alone: three ``Node``s in one process, no sockets. The ``fanout`` package
(``python -m groupcomm.benchmark.fanout``) runs a log fan-out, access-log lines from a few
publishers to many consumers, against Redis pub/sub and Redis Streams. ``docs/performance.md``
explains the fields.
"""
