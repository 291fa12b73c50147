"""Deprecated: moved to ``mmd_keras.evaluation.metrics`` (KID in ``mmd_keras.evaluation.kid``).

This re-export keeps old imports working.
"""

import warnings

from mmd_keras.evaluation.metrics import *  # noqa: F401,F403

warnings.warn(f"{__name__} is deprecated; "
              "import mmd_keras.evaluation.metrics instead.", DeprecationWarning, stacklevel=2)
