"""Errors the library raises for bad input, carrying the name of the argument at fault.

TF-free on purpose: the command line (:mod:`mmd_keras.app.errors`) imports it to map each error
to its flag and exit code without importing TensorFlow and without reading the error text.
"""


class ArgumentError(ValueError):
    """A bad argument of a library builder (network, loss, kernel, dataset, ...).

    Attributes:
        argument: the keyword argument at fault, e.g. ``"image_size"``.
        owner: what was being built, e.g. ``"generator"``, ``"critic"``, ``"loss"``.
    """

    def __init__(self, argument, message, owner=None):
        super().__init__(message)
        self.argument = argument
        self.owner = owner


class CheckpointError(ValueError):
    """Checkpoints exist in a directory but none of them can be used (each is listed with its
    reason in the message); nothing was changed.

    Attributes:
        argument: the argument naming the checkpoints folder, ``"directory"``.
        directory: that folder.
    """

    def __init__(self, directory, message, argument="directory"):
        super().__init__(message)
        self.argument = argument
        self.directory = directory
