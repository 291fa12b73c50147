"""The application around the library: the two command lines and what only they need.

* :mod:`~mmd_keras.app.config` — :class:`RunConfig`, one field per flag, and its checks
  (:class:`ConfigError` names the flag); TensorFlow-free, so ``--help`` and flag errors are fast.
* :mod:`~mmd_keras.app.launch` — the training command line (``python -m mmd_keras.launch``).
* :mod:`~mmd_keras.app.runner` — runs a RunConfig: preflight, build, fit, report.
* :mod:`~mmd_keras.app.errors` — the library's errors mapped to a flag and exit code 2.
* :mod:`~mmd_keras.app.workdir_lock`, :mod:`~mmd_keras.app.preemption` — one run per workdir;
  SIGTERM/SIGINT checkpoint and exit 42.
* :mod:`~mmd_keras.app.evaluate` — the evaluation command line
  (``python -m mmd_keras.evaluation``).

The library (everything outside this package) never imports it, except the two entry points
``mmd_keras/launch.py`` and ``mmd_keras/evaluation/__main__.py``
(``tests/test_import_graph.py``).
"""
