"""Build hook: ships the top-level ``configs/*.cfg`` (their one source) inside the package as
``mmd_keras/configs/`` so ``mmd-keras --config=NAME`` works from an installed wheel, and picks the
TensorFlow build the package requires. Everything else is declared in setup.cfg.

TensorFlow comes as several distributions that all install the same ``tensorflow/`` package:
``tensorflow`` (CPUs, and NVIDIA GPUs through the system's CUDA), ``tensorflow[and-cuda]`` (the same
wheel plus NVIDIA's CUDA/cuDNN wheels), ``tensorflow-cpu`` and ``tensorflow-tpu`` (Cloud TPU VMs; its
own requirements pull the matching ``libtpu``). A requirement names one distribution, and pip does
not count ``tensorflow-tpu`` as ``tensorflow``: a fixed ``tensorflow>=2.16`` would install the plain
wheel over a TPU VM's ``tensorflow-tpu`` (two distributions writing one folder). So the build is
chosen at install time by ``MMD_KERAS_TENSORFLOW`` (a requirement cannot be optional by default,
and extras only add requirements)::

    pip install -e .                              # tensorflow       (default)
    MMD_KERAS_TENSORFLOW=cuda pip install -e .    # tensorflow[and-cuda]
    MMD_KERAS_TENSORFLOW=cpu  pip install -e .    # tensorflow-cpu
    MMD_KERAS_TENSORFLOW=tpu  pip install -e .    # tensorflow-tpu (+ libtpu)
    MMD_KERAS_TENSORFLOW=none pip install -e .    # keep the environment's own TensorFlow build

The choice is written into the built metadata: a wheel built once keeps it wherever it is installed.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

MINIMUM_TENSORFLOW = "2.16"  # Keras 3 becomes tf.keras
#: ``MMD_KERAS_TENSORFLOW`` value → the TensorFlow requirement (None: no requirement).
TENSORFLOW_BUILDS = {
    "tensorflow": f"tensorflow>={MINIMUM_TENSORFLOW}",
    "cuda": f"tensorflow[and-cuda]>={MINIMUM_TENSORFLOW}",
    "cpu": f"tensorflow-cpu>={MINIMUM_TENSORFLOW}",
    "tpu": f"tensorflow-tpu>={MINIMUM_TENSORFLOW}",
    "none": None,
}


def tensorflow_requirement(environ):
    """The TensorFlow requirement chosen by ``environ["MMD_KERAS_TENSORFLOW"]`` (default
    ``tensorflow``), as a list of zero or one requirement strings."""
    build = environ.get("MMD_KERAS_TENSORFLOW", "").strip().lower() or "tensorflow"
    if build not in TENSORFLOW_BUILDS:
        raise SystemExit(
            f"error: Expected `MMD_KERAS_TENSORFLOW` in {sorted(TENSORFLOW_BUILDS)} (unset: "
            f"tensorflow). Received: `MMD_KERAS_TENSORFLOW={environ['MMD_KERAS_TENSORFLOW']}`")
    requirement = TENSORFLOW_BUILDS[build]
    return [requirement] if requirement else []


class BuildPyWithConfigs(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "mmd_keras", "configs")
        os.makedirs(target, exist_ok=True)
        here = os.path.dirname(os.path.abspath(__file__))
        for path in sorted(glob.glob(os.path.join(here, "configs", "*.cfg"))):
            shutil.copy(path, target)


# Why each dependency is here:
#   tensorflow (one build, above): the TF backend runs everything (tf.GradientTape, tf.distribute).
#   keras>=3           : the Model/Layer/optimizer API the library is written against.
#   numpy              : host-side float64 statistics (relative-similarity test, metrics).
#   absl-py            : flags of the two command lines (`mmd_keras.app`, the only package that reads flags).
#   tensorflow-datasets: the TFDS datasets of the papers (cifar10, celeb_a, lsun, ...).
#   importlib_resources: tensorflow-datasets imports it on every real `tfds.load` without declaring it.
#   scikit-learn       : ships the offline `digits` dataset and sample photos (the default run needs no download).
#   scipy              : stable matrix square root for FID and the normal CDF of the relative-similarity test.
#   pillow             : decodes scikit-learn's sample photos and writes sample-grid PNGs.
#   tensorboard        : tf.summary's writers (TF 2.21 no longer installs it); the run logs scalars/images.
# (They live here, not in setup.cfg: setuptools ignores setup.cfg's install_requires when setup()
# receives one.)
INSTALL_REQUIRES = [
    *tensorflow_requirement(os.environ),
    "keras>=3",
    "numpy>=1.23",
    "absl-py>=1.0",
    "tensorflow-datasets>=4.9",
    "importlib_resources>=5",
    "scikit-learn>=1.2",
    "scipy>=1.9",
    "pillow>=9",
    "tensorboard>=2.16",
]

setup(cmdclass={"build_py": BuildPyWithConfigs}, install_requires=INSTALL_REQUIRES)
