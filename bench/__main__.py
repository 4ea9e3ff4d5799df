"""`python -m bench [--quick] [--scale …] [--repeats N] [--only …]` - see bench/README.md."""

import sys

from bench.runner import main

sys.exit(main())
