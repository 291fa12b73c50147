"""``mmd-keras`` = ``python -m mmd_keras.launch``: the training command line's entry point.

The command line itself is :mod:`mmd_keras.app.launch` (flags, ``--help``, exit codes); this
module only prepares the process for TensorFlow and calls it. It is one of the two library
modules that import :mod:`mmd_keras.app` (the other is ``mmd_keras.evaluation.__main__``).

Example::

    python -m mmd_keras.launch --flagfile=configs/imagenet64.cfg --data_dir=DIR
"""

import sys

from mmd_keras import performance

# Before TensorFlow is imported (it reads the variable once, at import): its oneDNN CPU
# kernels on every x86 CPU (TF's default only where AVX-512 exists), unless the user set
# TF_ENABLE_ONEDNN_OPTS. The application imports TensorFlow only after the flags are valid.
performance.prefer_onednn()

from mmd_keras.app import launch as _app  # noqa: E402  (after the environment is set)


def main(argv=None, stdout=None):
    """Runs the launcher on ``argv``; returns the process exit code (never calls sys.exit)."""
    return _app.main(argv, stdout=stdout)


def console_main():
    """Entry point of the ``mmd-keras`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
