"""Errors a user can cause. Each carries one sentence that says what went wrong and what to do.

Both front doors show ``str(error)`` as it is: the CLI on one stderr line, the GUI in a message.
"""


class EquigenError(Exception):
    """Base for every error the engine raises on purpose."""


class SpecError(EquigenError):
    """An INR spec is malformed or unknown."""


class InvalidINRFile(EquigenError):
    """An INR file cannot be read: not a file we know, unsafe, truncated or mis-shaped."""


class InputError(EquigenError):
    """An input (image, mesh, folder, argument) cannot be used."""


class EmptyFieldError(EquigenError):
    """A 3D INR has no surface: the field is inside everywhere or nowhere."""


class Cancelled(EquigenError):
    """A long operation was stopped on request."""
