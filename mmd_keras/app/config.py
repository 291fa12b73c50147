"""The run configuration: one frozen dataclass, validated field by field and as a whole.

:class:`RunConfig` is the single description of a training run. :mod:`mmd_keras.app.launch`
turns absl flags into it (one flag per field, same name), :mod:`mmd_keras.app.runner` runs it,
and :func:`to_flagfile` writes it back as a flagfile that replays the run. Every check raises
:class:`ConfigError`, a ``ValueError`` that names the flag, the accepted values and the
received value, so the launcher can print it and exit with code 2 before writing anything.

The checks here are the command line's own (values, combinations of flags); what a network,
loss or kernel accepts is checked by building it (:func:`mmd_keras.app.runner.checks.preflight`).
The choices come from the library's registries, read without TensorFlow
(:mod:`mmd_keras.catalog`, :mod:`mmd_keras.networks`): this module never imports it.

The defaults are the offline default run (``configs/digits.cfg``): MMD-rep with a Gaussian
kernel on scikit-learn's digits at 32 px, the "small" networks, a few minutes on a 2-core CPU.
"""

import dataclasses
import math
import os
from typing import Tuple

from mmd_keras import catalog, networks
from mmd_keras.networks.checks import INITIALIZATIONS

# The choices of the flags are the library's registries, read TensorFlow-free.
LOSSES = tuple(catalog.LOSSES)
#: Keyword arguments each loss accepts (``--loss_params`` keys, listed by ``--help``).
LOSS_PARAMS = catalog.LOSSES
KERNELS = tuple(catalog.KERNELS)
ARCHITECTURES = tuple(networks.ARCHITECTURES)
#: ``default`` = the architecture's paper setting (``mmd_keras.networks.ARCHITECTURES``).
SN_MODES = networks.SN_MODES
STRATEGIES = catalog.STRATEGIES
ACROSS_REPLICAS = catalog.ACROSS_REPLICAS
CRITIC_SCHEDULES = catalog.CRITIC_SCHEDULES
LATENT_DISTRIBUTIONS = catalog.LATENT_DISTRIBUTIONS
DATASETS = tuple(catalog.DATASETS)
TOY_DATASETS = catalog.TOY_DATASETS
#: Datasets that read files: ``--data_dir`` is where they look (required for image_folder).
FILE_DATASETS = tuple(name for name, d in catalog.DATASETS.items() if d.reads_files)
#: The command line's own choices (Keras dtype policies; the best checkpoint's metric).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
BEST_METRICS = ("kid", "fid")

#: Fields that define the variables of a checkpoint: a workdir whose checkpoint was written
#: with other values cannot be resumed with these.
IDENTITY_FIELDS = ("architecture", "image_size", "latent_dim", "critic_output_dim",
                   "generator_widths", "critic_widths", "sn_mode", "learned_gain", "loss",
                   "ema_decay_on", "dataset", "image_channels")
#: Datasets whose channels ``--image_channels`` chooses (the others' are fixed).
CHANNEL_CHOICE_DATASETS = ("image_folder",)
IMAGE_CHANNELS = (0, 1, 3)


class ConfigError(ValueError):
    """A bad flag value or combination; ``flag`` names the (first) offending flag."""

    def __init__(self, flag, message):
        super().__init__(message)
        self.flag = flag


_C = "--collapse_recovery: "  # help prefix of its thresholds (mmd_keras.collapse)


def _field(default, group, help_text, **kwargs):
    return dataclasses.field(default=default, metadata={"group": group, "help": help_text},
                             **kwargs)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run. Field names are the flag names of ``mmd_keras.launch``.

    Lists (``kernel_sigmas``, ``kernel_alphas``) are tuples; ``loss_params`` is a tuple of
    ``"key=value"`` strings passed to ``mmd_keras.losses.get`` (values parsed as int, float,
    bool or string).
    """

    # Run.
    workdir: str = _field("runs/digits", "run", "Directory for checkpoints, samples, "
                          "TensorBoard logs and flags.cfg.")
    run_name: str = _field("", "run", "Name of the exported model (<export_dir>/<run_name>/); "
                           "empty = the workdir's base name.")
    seed: int = _field(0, "run", "Seed of weights, latents, penalties and data order.")
    deterministic: bool = _field(False, "run", "Deterministic ops and data order: a resumed run "
                                 "ends with the same weights as an uninterrupted one (slower).")
    # Data.
    dataset: str = _field("digits", "data", f"Training data, one of {DATASETS}.")
    data_dir: str = _field("", "data", "Where file datasets live (TFDS data_dir, or the image "
                           "folder for dataset=image_folder); empty = TFDS default.")
    image_size: int = _field(16, "data", "Training image height = width in pixels.")
    image_channels: int = _field(0, "data", "Channels of --dataset=image_folder images, "
                                 "converted on decode: 1 (grayscale) or 3 (RGB); 0 = the "
                                 "dataset's own (3 for image_folder; other datasets' are fixed).")
    # Networks.
    architecture: str = _field("small", "networks", f"Generator/critic pair, one of "
                               f"{ARCHITECTURES}.")
    latent_dim: int = _field(32, "networks", "Dimension of the generator's latent z.")
    latent_distribution: str = _field("normal", "networks", "Latent prior: uniform[-1,1] or "
                                      "normal N(0, I).")
    critic_output_dim: int = _field(16, "networks", "Critic output features s (16 for MMD "
                                    "losses, 1 for SMMD/hinge/...).")
    generator_widths: Tuple[int, ...] = _field((), "networks", "Generator channel widths "
                                               "(comma list; empty = the architecture's).")
    critic_widths: Tuple[int, ...] = _field((), "networks", "Critic channel widths (comma list; "
                                            "empty = the architecture's).")
    sn_mode: str = _field("pim", "networks", f"Spectral normalization of the critic, one of "
                          f"{SN_MODES} (default = the paper's for the architecture).")
    learned_gain: bool = _field(False, "networks", "Learned scalar gain after spectrally "
                                "normalized layers.")
    initialization: str = _field("keras", "networks", f"Kernel initialization, one of "
                                 f"{INITIALIZATIONS}: Keras's Glorot-uniform, or paper 1's "
                                 "official N(0, 0.02^2) convolutions and N(0, 0.01^2) linear "
                                 "layers (dcgan_p1 only).")
    bn_momentum: float = _field(0.99, "networks", "Momentum of the generator's batch-norm "
                                "moving statistics (Keras 0.99; paper 1's official code 0.9; "
                                "dcgan_p1 only).")
    # Loss.
    loss: str = _field("repulsive", "loss", f"Critic/generator loss, one of {LOSSES}.")
    kernel: str = _field("rbf", "loss", f"Kernel of MMD losses, one of {KERNELS}.")
    kernel_sigmas: Tuple[float, ...] = _field((1.0, 2.0, 4.0, 8.0, 16.0), "loss",
                                              "RBF bandwidths (comma list).")
    kernel_alphas: Tuple[float, ...] = _field((0.2, 0.5, 1.0, 2.0, 5.0), "loss",
                                              "Rational-quadratic alphas (comma list).")
    loss_params: Tuple[str, ...] = _field((), "loss", "Extra loss parameters as key=value "
                                          "(comma list), e.g. lam=0.5 for repulsive or "
                                          "coefficient=10 for smmd; the keys each loss accepts "
                                          "are listed under --loss in --help.")
    kernel_params: Tuple[str, ...] = _field((), "loss", "Extra kernel parameters as key=value "
                                            "(comma list), e.g. scale=2.0 for the distance kernel "
                                            "at the official code's scale.")
    # Training.
    steps: int = _field(3000, "training", "Total generator steps.")
    steps_per_epoch: int = _field(500, "training", "Generator steps per Keras epoch (one "
                                  "progress bar).")
    batch_size: int = _field(64, "training", "Batch size per replica (global = this x "
                             "replicas).")
    critic_schedule: str = _field("joint", "training", "fixed: critic_steps per G step; "
                                  "paper2: 10 when step<20 or step%500==0; joint: paper 3's "
                                  "1:1 from one forward pass.")
    critic_steps: int = _field(1, "training", "Critic steps per generator step (fixed and "
                               "paper2 schedules).")
    fresh_real_batches: bool = _field(True, "training", "A new real batch for every critic step "
                                      "and for the generator step, as the papers' codes draw "
                                      "them; false reuses one batch per generator step.")
    generator_lr: float = _field(2e-4, "training", "Adam learning rate of the generator.")
    critic_lr: float = _field(5e-4, "training", "Adam learning rate of the critic.")
    adam_beta1: float = _field(0.5, "training", "Adam beta_1 of both optimizers.")
    adam_beta2: float = _field(0.999, "training", "Adam beta_2 of both optimizers.")
    ema_decay: float = _field(0.0, "training", "EMA of generator weights (0 = off), used for "
                              "samples and export.")
    clip_norm: float = _field(0.0, "training", "Per-tensor gradient clipping norm (0 = off).")
    jit_compile: bool = _field(False, "training", "XLA-compile the train step (slower on CPU).")
    steps_per_execution: int = _field(1, "training", "Generator steps per host call (Keras "
                                      "compile(steps_per_execution=N); TPUs need N > 1 for "
                                      "speed). Every *_every, --steps and --steps_per_epoch must "
                                      "be multiples of N (callbacks run once per N steps).")
    mixed_precision: str = _field("float32", "training", f"Keras dtype policy, one of "
                                  f"{PRECISIONS}; losses stay float32.")
    collapse_recovery: bool = _field(False, "training", "Paper 2 §4 rank collapse: on a critic "
                                     "collapse restore the last healthy snapshot and multiply the "
                                     "loss's coefficient (SMMD/SWGAN coefficient, else the GP "
                                     "weight) by --collapse_factor.")
    collapse_check_every: int = _field(25, "training", _C + "steps between checks.")
    collapse_snapshot_every: int = _field(100, "training", _C + "steps between snapshots (k x checks).")
    collapse_condition_growth: float = _field(10.0, "training", _C + "condition-number growth.")
    collapse_scale_drop: float = _field(10.0, "training", _C + "SMMD scale drop (0 = off).")
    collapse_patience: int = _field(2, "training", _C + "alarms in a row that declare one.")
    collapse_factor: float = _field(10.0, "training", _C + "coefficient multiplier (> 1).")
    collapse_max_recoveries: int = _field(3, "training", _C + "recoveries, then exit 1.")
    collapse_lr_factor: float = _field(1.0, "training", _C + "learning-rate multiplier per recovery "
                                       "(0 < f <= 1; 1 = paper 2's recipe, the coefficient only).")
    # Distribution.
    strategy: str = _field("default", "distribution", f"tf.distribute strategy, one of "
                           f"{STRATEGIES}.")
    tpu: str = _field("", "distribution", "TPU name or grpc:// address (strategy=tpu).")
    mmd_across_replicas: str = _field("block", "distribution", "block: MMD per replica, "
                                      "gradients averaged; global: features all-gathered.")
    synchronized_bn: bool = _field(False, "distribution", "Generator batch norm with statistics "
                                   "of the global batch (all-reduced across replicas).")
    # Outputs.
    sample_every: int = _field(500, "outputs", "Write a sample grid PNG every N generator "
                               "steps (0 = only at the end).")
    num_grid_samples: int = _field(64, "outputs", "Images in a sample grid (fixed latents).")
    checkpoint_every: int = _field(500, "outputs", "Checkpoint every N generator steps.")
    keep_checkpoints: int = _field(3, "outputs", "Latest checkpoints kept (plus the best).")
    log_every: int = _field(50, "outputs", "TensorBoard scalars every N generator steps.")
    export: bool = _field(True, "outputs", "Export the generator as a SavedModel at the end.")
    export_dir: str = _field("saved_models", "outputs", "Root of exported generators, in TF "
                             "Serving's layout <export_dir>/<run_name>/<version>/ (relative to "
                             "the current directory).")
    # Evaluation.
    evaluate: bool = _field(True, "evaluation", "KID at the end and every eval_every steps: "
                            "digits classifier features vs held-out digits for digits, else "
                            "FID-Inception features (eval_weights) vs training images.")
    eval_weights: str = _field("", "evaluation", "FID-Inception weights (.npz from `python -m "
                               "mmd_keras.tools.convert_fid_inception`) for KID/FID on datasets "
                               "other than digits; needed there by eval_every/adaptive_lr.")
    eval_every: int = _field(1000, "evaluation", "KID/FID evaluation every N generator steps "
                             "(0 = only at the end).")
    eval_num_samples: int = _field(1000, "evaluation", "Generated samples per evaluation.")
    kid_subsets: int = _field(10, "evaluation", "KID subsets per evaluation.")
    kid_subset_size: int = _field(300, "evaluation", "Samples per KID subset.")
    best_metric: str = _field("kid", "evaluation", f"Metric of the best checkpoint, one of "
                              f"{BEST_METRICS}.")
    adaptive_lr: bool = _field(False, "evaluation", "Paper 1's KID-test learning-rate decay.")
    lr_decay: float = _field(0.8, "evaluation", "Learning-rate factor after repeated test "
                             "failures.")

    def __post_init__(self):
        validate(self)

    @property
    def ema_decay_on(self):
        """Whether the generator keeps an EMA copy (changes the checkpoint's variables)."""
        return self.ema_decay > 0

    @property
    def channels(self):
        """Image channels of the run: ``image_channels``, else the dataset's (toy data: 0)."""
        if self.dataset in TOY_DATASETS:
            return 0
        return self.image_channels or self.dataset_channels

    @property
    def dataset_channels(self):
        """The dataset's own channels (toy data: 0)."""
        return catalog.DATASETS[self.dataset].channels

    @property
    def name(self):
        """The run name used for export (the workdir's base name when ``run_name`` is empty)."""
        return self.run_name or os.path.basename(os.path.normpath(self.workdir)) or "run"

    def parsed_loss_params(self):
        """``loss_params`` as a dict with int/float/bool/str values."""
        return dict(_parse_param(item) for item in self.loss_params)

    def parsed_kernel_params(self):
        """``kernel_params`` as a dict with int/float/bool/str values."""
        return dict(_parse_param(item, "kernel_params") for item in self.kernel_params)

    def replace(self, **changes):
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def field_names():
    """Names of every field, in declaration (and flagfile) order."""
    return [f.name for f in dataclasses.fields(RunConfig)]


def _parse_param(item, flag="loss_params"):
    if "=" not in item or not item.split("=", 1)[0].strip():
        raise ConfigError(flag, f"Expected `--{flag}` entries of the form "
                          f"key=value. Received: `--{flag}={item}`")
    key, value = (part.strip() for part in item.split("=", 1))
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def _bad(flag, expected, value):
    raise ConfigError(flag, f"Expected `--{flag}` to be {expected}. Received: `--{flag}={value}`")


def _check_choice(config, flag, choices):
    value = getattr(config, flag)
    if value not in choices:
        _bad(flag, f"one of {list(choices)}", value)


#: Largest integer a flag may hold: TensorFlow keeps steps and seeds in int64 variables.
INT64_MAX = 2**63 - 1


def check_int(value, name, minimum=0, maximum=INT64_MAX):
    """The one integer check of the command line: a ConfigError naming ``--name`` unless
    ``value`` is an int (not a bool) in ``[minimum, maximum]``; returns ``value``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        _bad(name, f"an integer >= {minimum} (at most 2**63-1, int64)" if maximum == INT64_MAX
             else f"an integer in [{minimum}, {maximum}]", value)
    return value


def _check_int(config, flag, minimum):
    check_int(getattr(config, flag), flag, minimum)


def _check_float(config, flag, low, high=math.inf, low_open=False, high_open=False):
    value = getattr(config, flag)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        _bad(flag, f"a finite number in {lo}{low}, {high}{hi}", value)


def validate(config):
    """Raises :class:`ConfigError` for the first bad field or combination of ``config``."""
    for flag, choices in (("dataset", DATASETS), ("architecture", ARCHITECTURES),
                          ("loss", LOSSES), ("kernel", KERNELS), ("strategy", STRATEGIES),
                          ("critic_schedule", CRITIC_SCHEDULES),
                          ("latent_distribution", LATENT_DISTRIBUTIONS), ("sn_mode", SN_MODES),
                          ("mixed_precision", PRECISIONS),
                          ("mmd_across_replicas", ACROSS_REPLICAS),
                          ("best_metric", BEST_METRICS), ("initialization", INITIALIZATIONS)):
        _check_choice(config, flag, choices)
    if not isinstance(config.workdir, str) or not config.workdir.strip():
        _bad("workdir", "a non-empty directory path", config.workdir)
    if config.run_name and (("/" in config.run_name) or config.run_name in (".", "..")):
        _bad("run_name", "a plain name without '/'", config.run_name)
    for flag, minimum in (("seed", 0), ("image_size", 1), ("latent_dim", 1),
                          ("critic_output_dim", 1), ("batch_size", 2), ("steps", 1),
                          ("steps_per_epoch", 1), ("critic_steps", 1), ("sample_every", 0),
                          ("num_grid_samples", 1), ("checkpoint_every", 1),
                          ("keep_checkpoints", 1), ("log_every", 1), ("eval_every", 0),
                          ("steps_per_execution", 1),
                          ("eval_num_samples", 2), ("kid_subsets", 1), ("kid_subset_size", 2),
                          ("collapse_check_every", 1), ("collapse_snapshot_every", 1),
                          ("collapse_patience", 1), ("collapse_max_recoveries", 0)):
        _check_int(config, flag, minimum)
    for flag in ("collapse_condition_growth", "collapse_factor"):
        _check_float(config, flag, 1.0, low_open=True)
    _check_float(config, "collapse_lr_factor", 0.0, 1.0, low_open=True)
    _check_float(config, "bn_momentum", 0.0, 1.0, high_open=True)
    if config.collapse_scale_drop != 0:
        _check_float(config, "collapse_scale_drop", 1.0, low_open=True)
    if config.collapse_snapshot_every % config.collapse_check_every:
        _bad("collapse_snapshot_every", "a multiple of `--collapse_check_every="
             f"{config.collapse_check_every}`", config.collapse_snapshot_every)
    for flag in ("generator_lr", "critic_lr"):
        _check_float(config, flag, 0.0, low_open=True)
    for flag in ("adam_beta1", "adam_beta2", "ema_decay"):
        _check_float(config, flag, 0.0, 1.0, high_open=True)
    _check_float(config, "clip_norm", 0.0)
    _check_float(config, "lr_decay", 0.0, 1.0, low_open=True, high_open=True)
    for flag in ("generator_widths", "critic_widths"):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                   for v in getattr(config, flag)):
            _bad(flag, "a comma list of positive integers (or empty)",
                 ",".join(map(str, getattr(config, flag))))
    for flag in ("kernel_sigmas", "kernel_alphas"):
        values = getattr(config, flag)
        if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0
                                 for v in values):
            _bad(flag, "a non-empty comma list of positive numbers", ",".join(map(str, values)))
    # Which keys and values a loss and a kernel accept is theirs to say (preflight builds them).
    config.parsed_kernel_params()
    config.parsed_loss_params()
    _validate_combinations(config)
    _validate_steps_per_execution(config)


def _validate_steps_per_execution(config):
    """Callbacks see the step counter once per execution: every period must be a multiple."""
    n = config.steps_per_execution
    if n == 1:
        return
    for flag in ("steps", "steps_per_epoch", "checkpoint_every", "log_every", "sample_every",
                 "eval_every") + (("collapse_check_every",) if config.collapse_recovery else ()):
        if getattr(config, flag) % n:
            raise ConfigError(
                flag, f"Expected `--{flag}` to be a multiple of `--steps_per_execution={n}` "
                f"(callbacks run once per {n} steps). Received: `--{flag}={getattr(config, flag)}`")


def _validate_combinations(config):
    toy = config.dataset in TOY_DATASETS
    if toy != (config.architecture == "mlp"):
        raise ConfigError(
            "architecture", "Expected `--architecture=mlp` exactly for the 2-D toy datasets "
            f"{list(TOY_DATASETS)}. Received: `--architecture={config.architecture}` with "
            f"`--dataset={config.dataset}`")
    if config.dataset == "image_folder" and not config.data_dir:
        raise ConfigError("data_dir", "Expected `--data_dir` to name a folder of JPEG/PNG "
                          "images for `--dataset=image_folder`. Received: `--data_dir=`")
    if config.data_dir and config.dataset not in FILE_DATASETS:
        raise ConfigError(
            "data_dir", f"Expected no `--data_dir` for `--dataset={config.dataset}` (it ships "
            f"with an installed package); file datasets are {list(FILE_DATASETS)}. Received: "
            f"`--data_dir={config.data_dir}`")
    if check_int(config.image_channels, "image_channels", 0, 3) not in IMAGE_CHANNELS:
        _bad("image_channels", f"one of {list(IMAGE_CHANNELS)} (0 = the dataset's own)",
             config.image_channels)
    if (config.image_channels and config.dataset not in CHANNEL_CHOICE_DATASETS
            and config.image_channels != config.dataset_channels):
        raise ConfigError(
            "image_channels", f"Expected `--image_channels=0` for `--dataset={config.dataset}` "
            f"(its channels are fixed: {config.dataset_channels}); only "
            f"{list(CHANNEL_CHOICE_DATASETS)} converts images on decode. Received: "
            f"`--image_channels={config.image_channels}`")
    if config.tpu and config.strategy != "tpu":
        raise ConfigError("tpu", "Expected `--tpu` only with `--strategy=tpu`. Received: "
                          f"`--tpu={config.tpu}` with `--strategy={config.strategy}`")
    if config.jit_compile and config.strategy in ("mirrored", "multi_worker"):
        raise ConfigError(
            "jit_compile", f"Expected no `--jit_compile` with `--strategy={config.strategy}`: "
            "XLA compiles the step of every replica as one program on the first device, which "
            "cannot reach the other devices' variable copies; XLA runs with `--strategy=tpu`, "
            "`one_device` or `default`. Received: `--jit_compile` with "
            f"`--strategy={config.strategy}`")
    if (config.steps_per_execution > 1 and config.strategy in ("mirrored", "multi_worker")
            and config.critic_schedule != "paper2"):
        # Keras 3's multi-step loop (a tf.cond on the iterator inside a tf.while_loop) fails
        # under MirroredStrategy with several replicas, a one-Dense model too: "You must feed a
        # value for placeholder tensor" (keras-team/keras#19246). Paper 2's schedule runs the
        # model's own loop there (MMDGAN._paper2_replicated_train_function), which works.
        raise ConfigError(
            "steps_per_execution", "Expected `--steps_per_execution=1` with `--strategy="
            f"{config.strategy}` and `--critic_schedule={config.critic_schedule}`: Keras's loop "
            "of several steps per call fails under mirrored replicas (keras-team/keras#19246); "
            "several steps per call are for `--strategy=tpu` or `--critic_schedule=paper2`. "
            f"Received: `--steps_per_execution={config.steps_per_execution}`")
    if config.critic_schedule == "joint" and config.critic_steps != 1:
        raise ConfigError(
            "critic_steps", "Expected `--critic_steps=1` with `--critic_schedule=joint` (one "
            f"forward pass updates both networks). Received: `--critic_steps={config.critic_steps}`")
    if config.steps_per_epoch > config.steps:
        raise ConfigError(
            "steps_per_epoch", f"Expected `--steps_per_epoch` <= `--steps={config.steps}`. "
            f"Received: `--steps_per_epoch={config.steps_per_epoch}`")
    if not toy and config.eval_num_samples < config.kid_subset_size:
        raise ConfigError(
            "kid_subset_size", "Expected `--kid_subset_size` <= "
            f"`--eval_num_samples={config.eval_num_samples}` (subsets are drawn without "
            f"replacement). Received: `--kid_subset_size={config.kid_subset_size}`")


def to_flagfile(config, header=""):
    """The flagfile text that replays ``config``: grouped sections, one ``--flag=value`` a line."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    group = None
    for f in dataclasses.fields(RunConfig):
        if f.metadata["group"] != group:
            group = f.metadata["group"]
            lines += ["", f"# --- {group} ---"]
        lines.append(f"--{f.name}={format_value(getattr(config, f.name))}")
    return "\n".join(lines).lstrip("\n") + "\n"


def format_value(value):
    """A flag value as written in a flagfile (booleans lower-case, lists comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def identity(config):
    """The values of :data:`IDENTITY_FIELDS` as JSON values (tuples as lists), for comparing a
    workdir's ``run.json`` with a new run (checkpoint compatibility)."""
    resolved = {"image_channels": config.channels}  # 0 and the dataset's own are one network
    return {name: (list(value) if isinstance(value, tuple) else value)
            for name, value in ((n, resolved.get(n, getattr(config, n)))
                                for n in IDENTITY_FIELDS)}


__all__ = ["RunConfig", "ConfigError", "validate", "to_flagfile", "identity", "field_names"]
