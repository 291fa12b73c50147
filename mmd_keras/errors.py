"""Errors the library raises for bad arguments, carrying the argument's name.

TF-free on purpose: the command line imports it to map a library argument to its flag
without importing TensorFlow and without reading the error text.
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
