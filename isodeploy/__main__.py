"""``python -m isodeploy`` (and ``torchrun -m isodeploy``) runs the CLI."""

import sys

from isodeploy.cli import main

sys.exit(main())
