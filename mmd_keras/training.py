"""Deprecated: the runner moved to :mod:`mmd_keras.app.runner` (issue 17); these names remain."""

from mmd_keras.app.runner import *  # noqa: F401,F403  (the public names of the old module)
from mmd_keras.app.runner import __all__  # noqa: F401
from mmd_keras.app.runner.evaluation import real_images as evaluation_images  # noqa: F401
