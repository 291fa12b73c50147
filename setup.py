"""Build hook: ships the top-level ``configs/*.cfg`` (their one source) inside the package as
``mmd_keras/configs/`` so ``mmd-keras --config=NAME`` works from an installed wheel.
Everything else is declared in setup.cfg."""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "mmd_keras", "configs")
        os.makedirs(target, exist_ok=True)
        here = os.path.dirname(os.path.abspath(__file__))
        for path in sorted(glob.glob(os.path.join(here, "configs", "*.cfg"))):
            shutil.copy(path, target)


setup(cmdclass={"build_py": BuildPyWithConfigs})
