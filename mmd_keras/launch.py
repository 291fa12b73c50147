"""Command line of mmd_keras: ``python -m mmd_keras.launch [--flagfile=configs/X.cfg] [--flags]``.

The only module that defines or reads absl flags. One flag per :class:`mmd_keras.config.RunConfig`
field (same name, same default), plus ``--dry_run`` and absl's ``--flagfile``. With no flags it
runs the offline default (``configs/digits.cfg``): MMD-rep on scikit-learn's digits, minutes on a
CPU, no download.

Exit codes: 0 success; 2 bad input (unknown flag or value, incompatible combination, unusable
workdir, workdir busy or holding another run's checkpoint) — printed as one ``error:`` line and
nothing written or overwritten; 1 a run that stopped on a non-finite loss.

Examples::

    python -m mmd_keras.launch                                  # offline default (digits)
    python -m mmd_keras.launch --flagfile=configs/smoke.cfg --workdir=/tmp/smoke
    python -m mmd_keras.launch --flagfile=configs/cifar10_mmd_rep_b.cfg --dry_run
"""

import dataclasses
import sys
import typing

from absl import flags

from mmd_keras import config as config_lib

FLAGS = flags.FlagValues()
EXIT_BAD_INPUT = 2


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
    flags.DEFINE_boolean("dry_run", False, "Print the resolved configuration (the flags.cfg "
                         "that would be written) and exit without writing anything.",
                         flag_values=flag_values)


_define_flags(FLAGS)


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
    try:
        rest = FLAGS(list(argv))
    except flags.UnrecognizedFlagError as error:
        known = ", ".join(f"--{name}" for name in config_lib.field_names())
        raise config_lib.ConfigError(
            error.flagname, f"Expected a known flag ({known}, --dry_run, --flagfile). "
            f"Received: unknown flag `--{error.flagname}`") from None
    except flags.Error as error:  # A value absl cannot parse, e.g. --steps=abc.
        message = str(error)
        flag = message.split("=")[0].replace("flag --", "").strip("- ")
        raise config_lib.ConfigError(flag, f"Expected a valid value: {message}") from None
    if len(rest) > 1:
        raise config_lib.ConfigError(
            rest[1], "Expected only --flag=value arguments. Received: positional "
            f"argument(s) {rest[1:]}")
    return config_lib.RunConfig(**_values_from_flags(FLAGS)), FLAGS.dry_run


def main(argv=None, stdout=None):
    """Runs the launcher on ``argv``; returns the process exit code (never calls sys.exit)."""
    argv = sys.argv if argv is None else argv
    stdout = stdout or sys.stdout
    try:
        config, dry_run = parse(argv)
        from mmd_keras import training  # Imports TensorFlow: only after the flags are valid.

        strategy = None if dry_run else training.early_strategy(config)
        training.preflight(config)
    except config_lib.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if dry_run:
        print(config_lib.to_flagfile(config, header="Resolved configuration (--dry_run: "
                                     "nothing written)."), file=stdout, end="")
        return 0
    try:
        return training.run(config, argv=argv, strategy=strategy)
    except config_lib.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
