"""``python -m activews`` is the ``activews`` command."""

import sys

from activews.cli import main

sys.exit(main())
