"""Writes ``mmd_keras/_choices.py``: the library's registries as plain tuples, TensorFlow-free.

The command line (``mmd_keras.app.config``, ``mmd_keras.launch``) must parse flags and print
``--help`` without importing TensorFlow (12-17 s). The registries themselves live in modules
that need it (``losses``, ``kernels``, ``networks``, ``distribute``, ``models``, ``rng``), so
their names are copied here by a program, never by hand; ``tests/test_choices.py`` regenerates
the file and fails when it is stale. Run after changing a registry::

    python -m mmd_keras.tools.generate_choices          # rewrites mmd_keras/_choices.py
    python -m mmd_keras.tools.generate_choices --check  # exit 1 when stale
"""

import os
import pprint
import sys

TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "_choices.py")

HEADER = '''"""Choices of the command line, generated from the library's registries: DO NOT EDIT.

Regenerate with ``python -m mmd_keras.tools.generate_choices`` after changing a registry
(``tests/test_choices.py`` fails while this file is stale). TensorFlow-free on purpose: the
launcher parses flags and prints ``--help`` from it without importing TensorFlow.
"""
'''


def choices():
    """``{name: value}`` of every generated constant, read from the registries."""
    from mmd_keras import distribute, kernels, losses, models, networks, rng

    described = {name: losses.registry.describe(name) for name in losses.LOSSES}
    loss_params = {name: tuple(d["parameters"]) for name, d in described.items()}
    return {
        "LOSSES": tuple(losses.LOSSES),
        "SCALAR_OUTPUT_LOSSES": tuple(name for name, d in described.items()
                                      if d["scalar_critic"]),
        "KERNEL_LOSSES": tuple(name for name, d in described.items() if d["takes_kernel"]),
        "LOSS_PARAMS": loss_params,
        "KERNELS": tuple(kernels.KERNELS),
        "ARCHITECTURES": tuple(networks.ARCHITECTURES),
        "DEFAULT_SN_MODES": {arch: networks.default_sn_mode(arch)
                             for arch in networks.ARCHITECTURES},
        "SN_MODES": tuple(networks.SN_MODES),
        "STRATEGIES": tuple(distribute.STRATEGIES),
        "ACROSS_REPLICAS": tuple(distribute.ACROSS_REPLICAS),
        "CRITIC_SCHEDULES": tuple(models.CRITIC_SCHEDULES),
        "LATENT_DISTRIBUTIONS": tuple(rng.LATENT_DISTRIBUTIONS),
    }


def render(values):
    """The text of ``_choices.py`` for ``values``."""
    lines = [HEADER]
    for name, value in values.items():
        lines.append(f"{name} = {pprint.pformat(value, width=88, sort_dicts=False)}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = render(choices())
    current = ""
    if os.path.exists(TARGET):
        with open(TARGET) as f:
            current = f.read()
    if "--check" in argv:
        if current != text:
            print(f"{TARGET} is stale: run python -m mmd_keras.tools.generate_choices",
                  file=sys.stderr)
            return 1
        return 0
    if current != text:
        from mmd_keras import fileio

        fileio.atomic_write(TARGET, text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
