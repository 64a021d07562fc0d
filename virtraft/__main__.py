"""`python -m virtraft` works like the `virtraft` console script."""

import sys

from virtraft.cli.commands import main

sys.exit(main())
