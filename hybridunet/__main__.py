"""`python -m hybridunet` runs the command line."""

import sys

from hybridunet.cli import main

sys.exit(main())
