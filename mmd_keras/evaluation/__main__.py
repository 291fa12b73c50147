"""``python -m mmd_keras.evaluation``: the evaluation command line, :mod:`mmd_keras.app.evaluate`.

One of the two library modules that import :mod:`mmd_keras.app` (the other is
:mod:`mmd_keras.launch`)."""

import sys

from mmd_keras.app.evaluate import main

sys.exit(main())
