"""Converts pytorch-fid's Inception weights into the Keras FID Inception's weights file.

Usage::

    python -m mmd_keras.tools.convert_fid_inception pt_inception-2015-12-05-6726825d.pth \
        [OUTPUT.npz] [--overwrite]

The input is the PyTorch state dict that pytorch-fid and torch-fidelity download
(``pt_inception-2015-12-05-6726825d.pth``, released at
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/); reading it needs
torch (the ``torch`` extra: ``pip install "mmd_keras[torch]"``).
:mod:`mmd_keras.tools.fid_weights` writes the same file from TensorFlow's original graph
without torch; this converter is the alternative for those who have the ``.pth``. The output
``.npz`` holds the weights in Keras layout, tagged with a format string. Without ``OUTPUT`` it
is written to the default location, ``$MMD_KERAS_CACHE/fid_inception.npz`` (else
``~/.cache/mmd_keras/fid_inception.npz``), where ``python -m mmd_keras.evaluation
--extractor=fid_inception`` and :class:`mmd_keras.evaluation.inception.FIDInceptionExtractor`
look when no weights path is given. Exit status: 0 on success, 2 on bad arguments or input
(nothing is written then).
"""

import argparse
import os
import sys

from mmd_keras.tools import fid_weights


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
    output_path = fid_weights.check_output(output_path, overwrite)
    input_path = os.fspath(input_path)
    if not os.path.isfile(input_path):
        raise FileNotFoundError(f"Input weights file not found: `{input_path}`")
    from mmd_keras.evaluation import inception

    weights = inception.keras_weights_from_state_dict(read_state_dict(input_path))
    return fid_weights.write_weights(weights, output_path)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mmd_keras.tools.convert_fid_inception",
        description="Convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth to Keras "
                    "weights (needs torch; `python -m mmd_keras.tools.fid_weights` needs none).")
    parser.add_argument("input", help="PyTorch state dict (.pth) of pytorch-fid's FID Inception")
    parser.add_argument("output", nargs="?", default=None, help=fid_weights.output_help())
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    return fid_weights.run_and_report(
        lambda: convert(args.input, args.output, overwrite=args.overwrite),
        errors=(ImportError, OSError, ValueError))

if __name__ == "__main__":
    sys.exit(main())
