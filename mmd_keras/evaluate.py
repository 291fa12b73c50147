"""``python -m mmd_keras.evaluate``: the evaluation command line, now :mod:`mmd_keras.evaluation.cli`."""

import sys

from mmd_keras.evaluation.cli import *  # noqa: F401,F403
from mmd_keras.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
