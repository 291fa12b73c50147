"""The one mapping from the library's errors to the command line's flags and exit codes.

The library raises library errors that name an argument (:class:`mmd_keras.errors.ArgumentError`
with its ``owner``, :class:`mmd_keras.errors.CheckpointError`); the command line reports every
bad input as a :class:`mmd_keras.app.config.ConfigError` naming the flag the user typed, printed
as one ``error:`` line with exit code :data:`EXIT_BAD_INPUT`. :func:`flag_for` is where an
argument becomes a flag, :func:`config_error` where a library error becomes a ConfigError, and
:func:`describe_mismatch` where TensorFlow's refusal to restore a checkpoint into other networks
blames a flag.

TensorFlow-free: imported by the flag parsing path.
"""

import re

from mmd_keras.app.config import ConfigError, format_value
from mmd_keras.errors import ArgumentError, CheckpointError

#: Exit code of bad input, of both command lines: a flag, a combination, or a workdir the run
#: cannot use; nothing was written. (0, 1 and 42 are the run's: :mod:`mmd_keras.app.runner`.)
EXIT_BAD_INPUT = 2

# (owner, argument) -> flag; owner None matches any owner.
_FLAGS = {
    (None, "image_size"): "image_size", (None, "channels"): "dataset",
    (None, "output_dim"): "critic_output_dim", (None, "latent_dim"): "latent_dim",
    (None, "sn_mode"): "sn_mode", (None, "learned_gain"): "learned_gain",
    (None, "batch_norm"): "synchronized_bn", (None, "arch"): "architecture",
    ("generator", "widths"): "generator_widths", ("critic", "widths"): "critic_widths",
    (None, "sigmas"): "kernel_sigmas", (None, "alphas"): "kernel_alphas",
    (None, "kernel"): "kernel", (None, "loss"): "loss",
    # The checkpoints of a run live in its workdir.
    (None, "directory"): "workdir",
}


def flag_for(error, default):
    """The flag of a library error (by owner and argument), else ``default``.

    A loss's unknown or bad keyword is one of ``--loss_params``.
    """
    if not isinstance(error, (ArgumentError, CheckpointError)):
        return default
    owner = getattr(error, "owner", None)
    for key in ((owner, error.argument), (None, error.argument)):
        if key in _FLAGS:
            return _FLAGS[key]
    if owner == "loss":
        return "loss_params"
    return default


def config_error(error, config, default, expected):
    """The ConfigError reporting library error ``error`` for ``config``: its flag is
    :func:`flag_for` ``(error, default)``, its message :func:`bad_value`'s."""
    return bad_value(config, flag_for(error, default), expected, error)


def bad_value(config, flag, expected, detail):
    """ConfigError ``Expected `--flag` <expected> (<detail>). Received: `--flag=<value>```.

    Args:
        config: the RunConfig (the received value is read from it).
        flag: the flag at fault.
        expected: what it should be, e.g. ``"that `--loss=mmd` accepts"``.
        detail: why (the library's error, kept whole).
    """
    return ConfigError(flag, f"Expected `--{flag}` {expected} ({detail}). Received: `--{flag}="
                             f"{format_value(getattr(config, flag))}`")


_MISMATCH = re.compile(r"shape \(([\d, ]*)\) when attempting to restore variable with shape "
                       r"\(([\d, ]*)\) and name ([^\s:]+)")


def describe_mismatch(error, generator, latent_dim):
    """``(flag, detail)`` blaming the flag a checkpoint/model shape mismatch (TensorFlow's
    restore error ``error``) points to.

    A different first dimension of the generator's first kernel (the latent input) is
    ``--latent_dim``; anything else is ``--architecture`` (or another network flag).
    """
    text = (getattr(error, "message", None) or str(error) or type(error).__name__)
    match = _MISMATCH.search(str(error))
    if match and generator.weights:
        saved = tuple(int(d) for d in match.group(1).replace(" ", "").split(",") if d)
        wanted = tuple(int(d) for d in match.group(2).replace(" ", "").split(",") if d)
        first = generator.weights[0]
        if (match.group(3) == first.path and tuple(first.shape) == wanted and len(saved) == 2
                and saved[1:] == wanted[1:] and wanted[0] == latent_dim):
            return "latent_dim", (f"the checkpoint's generator takes latents of size {saved[0]}"
                                  f" (written with --latent_dim={saved[0]})")
    return "architecture", text.strip().splitlines()[0][:300]


__all__ = ["EXIT_BAD_INPUT", "flag_for", "config_error", "bad_value", "describe_mismatch"]
