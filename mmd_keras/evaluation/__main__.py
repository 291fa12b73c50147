"""``python -m mmd_keras.evaluation``: the same program as ``python -m mmd_keras.evaluate``."""

import sys

from mmd_keras.evaluation.cli import main

sys.exit(main())
