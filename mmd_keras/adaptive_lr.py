"""Deprecated: moved to ``mmd_keras.evaluation.adaptive_lr``, ``mmd_keras.evaluation.callback``.

This re-export keeps old imports working.
"""

import warnings

from mmd_keras.evaluation.adaptive_lr import *  # noqa: F401,F403
from mmd_keras.evaluation.callback import *  # noqa: F401,F403

warnings.warn(f"{__name__} is deprecated; "
              "import mmd_keras.evaluation.adaptive_lr instead.", DeprecationWarning, stacklevel=2)
