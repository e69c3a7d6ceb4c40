"""``python -m groupcomm.daemon [--config FILE] [--name N] [--log-json] [--trace FILE]``."""

import sys

from groupcomm.daemon.main import main

sys.exit(main())
