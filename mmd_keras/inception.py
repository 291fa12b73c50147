"""Deprecated: moved to ``mmd_keras.evaluation.inception``.

This re-export keeps old imports working.
"""

import warnings

from mmd_keras.evaluation.inception import *  # noqa: F401,F403

warnings.warn(f"{__name__} is deprecated; "
              "import mmd_keras.evaluation.inception instead.", DeprecationWarning, stacklevel=2)
