"""``python -m twin.cli``: the same as the ``twin`` command."""

import sys

from twin.cli.app import main

sys.exit(main())
