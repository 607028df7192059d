"""`python -m relayctl` runs the tool as the `relayctl` console script does."""

import sys

from relayctl.cli import main

sys.exit(main())
