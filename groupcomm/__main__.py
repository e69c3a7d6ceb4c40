"""``python -m groupcomm``: the ``groupcomm`` command."""

import sys

from groupcomm.cli import main

sys.exit(main())
