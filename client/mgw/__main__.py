"""``python -m mgw``: the same as the ``mgw`` console script."""

import sys

from mgw._cli import main

sys.exit(main())
