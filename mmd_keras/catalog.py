"""What the library's registries hold, by name, without TensorFlow: one definition each.

The command line (:mod:`mmd_keras.app.config`) validates its flags and prints ``--help`` from
these tables without importing TensorFlow (12-17 s); the TensorFlow side builds its registries
from the same tables, so a name is added in one place:

==========================  ====================================  ============================
table                       what it holds                         read by
==========================  ====================================  ============================
:data:`LOSSES`              loss name -> accepted keywords        ``mmd_keras.losses``
:data:`KERNELS`             kernel name -> class in ``kernels``   ``mmd_keras.kernels``
:data:`DATASETS`            dataset name -> channels, files       ``mmd_keras.datasets``
:data:`STRATEGIES`,         ``tf.distribute`` strategies, MMD     ``mmd_keras.distribute``
:data:`ACROSS_REPLICAS`     across replicas
:data:`CRITIC_SCHEDULES`    critic-step schedules                 ``mmd_keras.models``
:data:`LATENT_DISTRIBUTIONS`  latent priors                       ``mmd_keras.rng``
==========================  ====================================  ============================

The networks' registries (``ARCHITECTURES``, ``SN_MODES``) are TF-free in
:mod:`mmd_keras.networks` itself, whose builder modules are imported on first use.
"""

import collections

#: Keywords every loss accepts (``mmd_keras.losses.GANLoss.parameters``).
PENALTY_KEYWORDS = ("gradient_penalty_weight", "activation_penalty_weight", "legacy_gp_axis")
#: ... and every loss of the kernel (MMD) family (``mmd_family.KernelLoss.parameters``).
KERNEL_KEYWORDS = PENALTY_KEYWORDS + ("kernel", "estimator", "legacy_constant_diagonal")
_REPULSIVE = KERNEL_KEYWORDS + ("lam", "bounded", "lower_bound", "upper_bound")

#: Loss name -> the keywords ``mmd_keras.losses.get(name, **params)`` accepts. The loss classes'
#: ``parameters`` are these tuples (one definition; ``tests/test_catalog.py`` checks each
#: registered class against its name's entry).
LOSSES = {
    "mmd": KERNEL_KEYWORDS,
    "repulsive": _REPULSIVE,
    "rep_b": _REPULSIVE,
    "mmd_rbf_b": _REPULSIVE,
    "smmd": KERNEL_KEYWORDS + ("coefficient", "offset"),
    "swgan": KERNEL_KEYWORDS + ("coefficient", "offset"),
    "rep_gp": KERNEL_KEYWORDS + ("coefficient",),
    "gcmmd": PENALTY_KEYWORDS + ("kernel", "estimator", "lam"),
    "wgan_gp": PENALTY_KEYWORDS,
    "cramer": PENALTY_KEYWORDS,
    "sobolev": PENALTY_KEYWORDS + ("rho",),
    "hinge": PENALTY_KEYWORDS,
    "non_saturating": PENALTY_KEYWORDS,
}

#: Kernel name -> its class in :mod:`mmd_keras.kernels` (which sets each class's ``name``).
KERNELS = {
    "rbf": "RBF",
    "rq": "RationalQuadratic",
    "rq_dot": "RationalQuadraticDot",
    "dot": "Dot",
    "distance": "Distance",
    "polynomial": "Polynomial",
}

#: One dataset: its image channels (0: 2-D toy points) and whether it reads files (TFDS or a
#: folder: ``data_dir`` is where it looks) rather than shipping with an installed package.
Dataset = collections.namedtuple("Dataset", "channels reads_files")

#: Dataset name -> :class:`Dataset` (``mmd_keras.datasets``; its table has the sources).
DATASETS = {
    "cifar10": Dataset(3, True),
    "stl10": Dataset(3, True),
    "celeb_a": Dataset(3, True),
    "downsampled_imagenet/64x64": Dataset(3, True),
    "lsun/bedroom": Dataset(3, True),
    "mnist": Dataset(1, True),
    "fashion_mnist": Dataset(1, True),
    "image_folder": Dataset(3, True),
    "digits": Dataset(1, False),
    "photo_patches": Dataset(3, False),
    "ring8": Dataset(0, False),
    "grid25": Dataset(0, False),
    "moons": Dataset(0, False),
}
#: The 2-D toy datasets (points, not images).
TOY_DATASETS = tuple(name for name, d in DATASETS.items() if not d.channels)

#: ``tf.distribute`` strategies of :func:`mmd_keras.distribute.create_strategy`.
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
#: How MMD losses see the batch across replicas: per replica, or features all-gathered.
ACROSS_REPLICAS = ("block", "global")
#: Critic steps per generator step of :class:`mmd_keras.models.MMDGAN`.
CRITIC_SCHEDULES = ("fixed", "paper2", "joint")
#: Latent priors: uniform[-1, 1] or normal N(0, I) (:mod:`mmd_keras.rng`).
LATENT_DISTRIBUTIONS = ("uniform", "normal")
