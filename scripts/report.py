"""Report a study: the same as ``python -m search.report`` (see there, or ``--help``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
