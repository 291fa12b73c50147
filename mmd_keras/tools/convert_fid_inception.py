"""Converts pytorch-fid's Inception weights into the Keras FID Inception's weights file.

Usage::

    python -m mmd_keras.tools.convert_fid_inception pt_inception-2015-12-05-6726825d.pth \
        [OUTPUT.npz] [--overwrite]

The input is the PyTorch state dict that pytorch-fid and torch-fidelity download
(``pt_inception-2015-12-05-6726825d.pth``, released at
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/); reading it needs
torch (the ``torch`` extra: ``pip install "mmd_keras[torch]"``). The output ``.npz`` holds the
weights in Keras layout, tagged with a format string. Without ``OUTPUT`` it is written to the
default location, ``$MMD_KERAS_CACHE/fid_inception.npz`` (else
``~/.cache/mmd_keras/fid_inception.npz``), where ``python -m mmd_keras.evaluate
--extractor=fid_inception`` and :class:`mmd_keras.evaluation.inception.FIDInceptionExtractor`
look when no weights path is given. Exit status: 0 on success, 2 on bad arguments or input
(nothing is written then).
"""

import argparse
import os
import sys

from mmd_keras.evaluation import weights as weights_lib


def read_state_dict(path):
    """Reads a PyTorch state dict (tensors only, ``weights_only=True``) as NumPy arrays.

    Raises:
        ImportError: torch is not installed (with the install command).
        ValueError: the file is not a state dict.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading a .pth file needs PyTorch, which is not installed. Install it with "
            '`pip install "mmd_keras[torch]"` (or `pip install torch`).') from error
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for corrupt files
        raise ValueError(
            f"Expected a PyTorch state dict file. Received: `{path}` ({type(error).__name__}: "
            f"{error})") from error
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not all(hasattr(v, "numpy")
                                                   for v in state_dict.values()):
        raise ValueError(
            f"Expected a dict of tensors in `{path}`. Received: {type(state_dict).__name__}")
    return {key: value.detach().cpu().numpy() for key, value in state_dict.items()}


def convert(input_path, output_path=None, overwrite=False):
    """Converts ``input_path`` (.pth) into ``output_path`` (.npz; default: the cache file).

    The names, layer count and classifier shape are checked here; every shape is checked
    again against the network when the file is loaded.

    Raises:
        FileNotFoundError: no input file.
        FileExistsError: the output exists and ``overwrite`` is False.
        ValueError: the state dict is not pytorch-fid's Inception (names the bad entries).
    """
    if output_path is None:
        output_path = weights_lib.default_fid_weights_path()
        os.makedirs(os.path.dirname(output_path), exist_ok=True)
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if not output_path.endswith(".npz"):
        raise ValueError(f"Expected an output path ending in `.npz`. Received: `{output_path}`")
    if not os.path.isfile(input_path):
        raise FileNotFoundError(f"Input weights file not found: `{input_path}`")
    if os.path.exists(output_path) and not overwrite:
        raise FileExistsError(
            f"Output `{output_path}` exists; pass --overwrite to replace it.")
    from mmd_keras.evaluation import inception

    weights = inception.keras_weights_from_state_dict(read_state_dict(input_path))
    inception.check_converted_weights(weights)
    from mmd_keras import fileio

    with fileio.atomic_path(output_path, suffix=".npz") as tmp_path:
        inception.save_fid_inception_weights(weights, tmp_path)
    return output_path


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mmd_keras.tools.convert_fid_inception",
        description="Convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth to Keras weights.")
    parser.add_argument("input", help="PyTorch state dict (.pth) of pytorch-fid's FID Inception")
    parser.add_argument("output", nargs="?", default=None,
                        help="Keras weights file to write (.npz); default "
                             f"{weights_lib.default_fid_weights_path()} (the default location "
                             "evaluate and the launcher look at)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    try:
        path = convert(args.input, args.output, overwrite=args.overwrite)
    except (ImportError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
