"""``python -m s3bench`` (from the benchmarks directory)."""

import sys

from .cli import main

sys.exit(main())
