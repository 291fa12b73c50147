"""Command line of mmd_keras: ``mmd-keras`` = ``python -m mmd_keras.launch`` (its entry point,
:mod:`mmd_keras.launch`, sets the TensorFlow environment and calls :func:`main`).

The only module that defines or reads the training flags. One flag per
:class:`mmd_keras.app.config.RunConfig` field (same name, same default), plus the command flags
``--config=NAME`` (a shipped config), ``--flagfile=PATH`` (absl: a file of flags, e.g. your own
config), ``--list_configs``, ``--dry_run`` and ``--help``/``-h``/``--helpfull``. Flags are read
left to right and a flag given twice takes its last value (absl's rule), so
``--config=smoke --steps=10`` overrides the config's ``--steps``. With no flags it runs the
offline default (``configs/digits.cfg``): MMD-rep on scikit-learn's digits, minutes on a CPU,
no download.

Parsing flags, ``--help`` and flag errors never import TensorFlow (the choices come from the
library's TF-free registries, :mod:`mmd_keras.catalog` and :mod:`mmd_keras.networks`).

Exit codes: 0 success; 2 bad input (unknown flag or value, incompatible combination, unusable
workdir, workdir busy or holding another run's checkpoint) — printed as one ``error:`` line and
nothing written or overwritten; 1 a run that stopped on a non-finite loss or weight, whose
write failed (disk full, read-only), or whose ``--collapse_recovery`` gave up (a collapse after
``--collapse_max_recoveries`` recoveries); 42 stopped by SIGTERM/Ctrl-C after checkpointing the current
step — rerun the same command to resume (README, "Failure behaviour").

Examples::

    mmd-keras                                          # offline default (digits)
    mmd-keras --config=smoke --workdir=/tmp/smoke
    mmd-keras --config=imagenet64 --dry_run            # what would run, offline
    python -m mmd_keras.launch --flagfile=configs/imagenet64.cfg --data_dir=DIR
"""

import contextlib
import dataclasses
import glob
import os
import re
import sys
import tempfile
import typing

from absl import flags

from mmd_keras.app import _help
from mmd_keras.app import config as config_lib
from mmd_keras.app.errors import EXIT_BAD_INPUT

FLAGS = flags.FlagValues()
HELP_FLAGS = ("-h", "-help", "--help", "--helpfull", "--helpshort", "-?")
#: Section order of ``--help`` (the ``group`` of each RunConfig field).
SECTIONS = ("run", "data", "networks", "loss", "training", "evaluation", "outputs",
            "distribution")
_CHOICES = {
    "dataset": config_lib.DATASETS, "architecture": config_lib.ARCHITECTURES,
    "latent_distribution": config_lib.LATENT_DISTRIBUTIONS, "sn_mode": config_lib.SN_MODES,
    "loss": config_lib.LOSSES, "kernel": config_lib.KERNELS,
    "critic_schedule": config_lib.CRITIC_SCHEDULES, "mixed_precision": config_lib.PRECISIONS,
    "strategy": config_lib.STRATEGIES, "mmd_across_replicas": config_lib.ACROSS_REPLICAS,
    "best_metric": config_lib.BEST_METRICS, "initialization": config_lib.INITIALIZATIONS,
}
_COMMAND_FLAGS = (
    ("--config=NAME", "A shipped config by name (see --list_configs), read like --flagfile."),
    ("--flagfile=PATH", "A file of --flag=value lines, e.g. your own copy of a config."),
    ("--list_configs", "Print every shipped config with its one-line purpose and exit."),
    ("--dry_run", "Run every check of a real run that needs no dataset (flags, networks, loss, "
     "workdir, --data_dir and evaluation-weights files), print the resolved flags and what "
     "was not checked, write nothing; exit 2 listing each failing flag."),
    ("--help, -h, --helpfull", "This text."),
)


def _define_flags(flag_values):
    for field in dataclasses.fields(config_lib.RunConfig):
        name, default, help_text = field.name, field.default, field.metadata["help"]
        if field.type is bool:
            flags.DEFINE_boolean(name, default, help_text, flag_values=flag_values)
        elif field.type is int:
            flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
        elif field.type is float:
            flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
        elif field.type is str:
            flags.DEFINE_string(name, default, help_text, flag_values=flag_values)
        elif typing.get_origin(field.type) is tuple:
            flags.DEFINE_list(name, [config_lib.format_value(v) for v in default], help_text,
                              flag_values=flag_values)
        else:  # pragma: no cover - a new field type needs a branch here.
            raise TypeError(f"No flag type for RunConfig.{name}: {field.type}")
    flags.DEFINE_boolean("dry_run", False, _COMMAND_FLAGS[3][1], flag_values=flag_values)


_define_flags(FLAGS)


# --- shipped configs ----------------------------------------------------------------------------

def configs_dir():
    """Directory of the shipped configs: ``mmd_keras/configs`` in an installed wheel (setup.py
    copies them there), else the checkout's top-level ``configs/`` (their one source)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # mmd_keras/
    for candidate in (os.path.join(package, "configs"),
                      os.path.join(os.path.dirname(package), "configs")):
        if glob.glob(os.path.join(candidate, "*.cfg")):
            return candidate
    raise FileNotFoundError("mmd_keras: no shipped configs next to the package")


def _purpose(path):
    """The first sentence of a config's header comment, on one line."""
    text = ""
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            text = f"{text} {line.lstrip('#').strip()}".strip()
            if "." in text.replace("e.g.", "") or line.startswith(("# Paper", "# Hardware")):
                break
    match = re.match(r"(.*?\.)(\s|$)", text)
    return match.group(1) if match else text


def shipped_configs():
    """``{name: one-line purpose}`` of every shipped config (its header's first sentence)."""
    return {os.path.basename(path)[:-4]: _purpose(path)
            for path in sorted(glob.glob(os.path.join(configs_dir(), "*.cfg")))}


def _expand_configs(argv):
    """``--config=NAME`` / ``--config NAME`` → ``--flagfile=<shipped path>``, in place (order
    kept, so later flags still override the config)."""
    out, args = [argv[0]], list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg in ("--config", "-config"):
            if not args:
                raise config_lib.ConfigError("config", "Expected `--config=NAME`. Received: "
                                             "`--config` without a name")
            arg = f"--config={args.pop(0)}"
        if arg.startswith(("--config=", "-config=")):
            name = arg.split("=", 1)[1]
            names = shipped_configs()
            if name not in names:
                raise config_lib.ConfigError(
                    "config", f"Expected `--config` to be a shipped config, one of "
                    f"{sorted(names)} (or use --flagfile=PATH for your own file). Received: "
                    f"`--config={name}`")
            arg = f"--flagfile={os.path.join(configs_dir(), name + '.cfg')}"
        out.append(arg)
    return out


# --- help ---------------------------------------------------------------------------------------

def help_text(program="mmd-keras"):
    """Every flag grouped by section, with its help, default and accepted values."""
    lines = [f"usage: {program} [--config=NAME | --flagfile=PATH] [--flag=value ...]", "",
             "Trains an MMD GAN (or resumes the run in --workdir). Flags are read left to right; "
             "a flag given twice", "takes its last value (absl's rule), also across "
             "--config/--flagfile files.", "", "command:"]
    for name, text in _COMMAND_FLAGS:
        lines += [f"  {name}", _help.wrap(text)]
    by_group = {}
    for field in dataclasses.fields(config_lib.RunConfig):
        by_group.setdefault(field.metadata["group"], []).append(field)
    assert set(by_group) == set(SECTIONS), set(by_group) ^ set(SECTIONS)
    for section in SECTIONS:
        lines += ["", f"{section}:"]
        for field in by_group[section]:
            lines += _help.flag_lines(
                field.name, config_lib.format_value(field.default) or "''",
                field.metadata["help"], _CHOICES.get(field.name, ()), field.type is bool)
            if field.name == "loss_params":
                for loss, keys in config_lib.LOSS_PARAMS.items():
                    lines.append(_help.wrap(
                        f"{loss}: {', '.join(k for k in keys if k != 'kernel')}", 8))
    return "\n".join(lines) + "\n"


def list_configs_text():
    """One line per shipped config: name and purpose."""
    configs = shipped_configs()
    width = max(map(len, configs))
    return "".join(f"{name:<{width}}  {purpose}\n" for name, purpose in configs.items())


# --- TensorFlow's start-up noise ---------------------------------------------------------------

_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|cudart_stub|cuInit|"
    r"cuda_platform|Unable to register cu(DNN|FFT|BLAS) factory|computation placer|TF-TRT|"
    r"This TensorFlow binary is optimized|To enable the following instructions|"
    r"rebuild TensorFlow with the appropriate compiler flags|cpu_feature_guard|"
    r"Could not find cuda drivers")


@contextlib.contextmanager
def quiet_tensorflow_startup():
    """Hides TensorFlow's C++ start-up lines (oneDNN banner, CUDA probing on CPU machines)
    unless the user set ``TF_CPP_MIN_LOG_LEVEL``: the C++ side writes to file descriptor 2
    before its log level applies, so stderr is captured while TensorFlow starts and every
    other line is replayed."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not _NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


# --- parsing ------------------------------------------------------------------------------------

def _values_from_flags(flag_values):
    values = {}
    for field in dataclasses.fields(config_lib.RunConfig):
        value = flag_values[field.name].value
        if typing.get_origin(field.type) is tuple:
            element = typing.get_args(field.type)[0]
            try:
                value = tuple(element(v.strip()) for v in value if v.strip())
            except ValueError:
                raise config_lib.ConfigError(
                    field.name, f"Expected `--{field.name}` to be a comma list of "
                    f"{element.__name__} values. Received: `--{field.name}={','.join(value)}`"
                ) from None
        values[field.name] = value
    return values


def parse(argv):
    """Parses ``argv`` (``argv[0]`` is the program) into a validated RunConfig.

    Returns:
        ``(config, dry_run)``.

    Raises:
        ConfigError: unknown flag, unparsable value, or a value/combination the config rejects.
    """
    FLAGS.unparse_flags()
    argv = _expand_configs(list(argv))
    try:
        rest = FLAGS(argv)
    except flags.UnrecognizedFlagError as error:
        raise config_lib.ConfigError(
            error.flagname, f"Expected a known flag (see --help). Received: unknown flag "
            f"`--{error.flagname}`") from None
    except flags.IllegalFlagValueError as error:  # A value absl cannot parse, e.g. --steps=abc.
        message = str(error)
        flag = message.split("=")[0].replace("flag --", "").strip("- ")
        raise config_lib.ConfigError(flag, f"Expected a valid value: {message}") from None
    except flags.Error as error:  # e.g. a flagfile that cannot be opened.
        raise config_lib.ConfigError("flagfile", f"Expected a readable --flagfile. "
                                     f"Received: {error}") from None
    if len(rest) > 1:
        raise config_lib.ConfigError(
            rest[1], "Expected only --flag=value arguments. Received: positional "
            f"argument(s) {rest[1:]}")
    return config_lib.RunConfig(**_values_from_flags(FLAGS)), FLAGS.dry_run


def main(argv=None, stdout=None):
    """Runs the launcher on ``argv``; returns the process exit code (never calls sys.exit)."""
    argv = sys.argv if argv is None else argv
    stdout = stdout or sys.stdout
    if any(arg in HELP_FLAGS or arg.startswith("--help=") for arg in argv[1:]):
        print(help_text(), file=stdout, end="")
        return 0
    if any(arg in ("--list_configs", "-list_configs") for arg in argv[1:]):
        print(list_configs_text(), file=stdout, end="")
        return 0
    try:
        config, dry_run = parse(argv)
    except config_lib.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with quiet_tensorflow_startup():  # TensorFlow is imported only after the flags are valid.
        import tensorflow as tf

        from mmd_keras.app import runner

        tf.config.list_physical_devices()  # CUDA probing happens here, inside the capture.

    try:
        if dry_run:
            return runner.dry_run(config, stdout=stdout)
        return runner.run(config, argv=argv)
    except config_lib.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        # A checkpoint refused half-way stays partly restored in the objects it was read into;
        # at exit TensorFlow would log their "unrestored values" after the error line.
        tf.get_logger().setLevel("ERROR")
        return EXIT_BAD_INPUT
