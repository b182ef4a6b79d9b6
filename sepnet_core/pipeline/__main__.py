"""``python -m sepnet_core.pipeline``: run the book's stages, then build the book (see :mod:`.cli`)."""

import sys

from sepnet_core.pipeline.cli import main

sys.exit(main())
