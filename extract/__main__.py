"""Entry point of ``python -m extract``."""

import sys

from extract.runner import main

sys.exit(main())
