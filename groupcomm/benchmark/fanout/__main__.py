"""``python -m groupcomm.benchmark.fanout``: see ``command``."""

import sys

from groupcomm.benchmark.fanout.command import main

sys.exit(main())
