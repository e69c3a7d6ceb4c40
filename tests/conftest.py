"""The test process runs the plain source; the daemons it starts run the compiled build.

Mutation tests replace functions and methods of the core and the codecs (``monkeypatch``), and
property tests build frames by introspecting dataclasses: neither works on mypyc's native
classes. So this process imports the package with ``GROUPCOMM_COMPILED=0``, then puts the
variable back, so that every daemon, member and simulator process a test starts decides for
itself as a user's would (``auto``: the build when it is fresh). ``tests/test_compiled.py``
checks that the build is used there and behaves like the source.
"""

from __future__ import annotations

import os

_before = os.environ.get("GROUPCOMM_COMPILED")
os.environ["GROUPCOMM_COMPILED"] = "0"
try:
    import groupcomm.compiled
finally:
    if _before is None:
        del os.environ["GROUPCOMM_COMPILED"]
    else:
        os.environ["GROUPCOMM_COMPILED"] = _before

assert not groupcomm.compiled.active(), "the test process must run the plain source"
