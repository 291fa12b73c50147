"""Deprecated: moved to ``mmd_keras.evaluation.extractors``.

This re-export keeps old imports working.
"""

import warnings

from mmd_keras.evaluation.extractors import *  # noqa: F401,F403

warnings.warn(f"{__name__} is deprecated; "
              "import mmd_keras.evaluation.extractors instead.", DeprecationWarning, stacklevel=2)
