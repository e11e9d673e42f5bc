#!/usr/bin/env python
"""Side-by-side S3 benchmark of leofs and SeaweedFS: ``python benchmarks/run.py --help``.

See ``benchmarks/README.md``. Runs from the repository root with the project's venv active.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
