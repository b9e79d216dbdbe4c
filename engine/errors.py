"""Errors a user can cause. Each carries one sentence that says what went wrong and what to do.

Both front doors show ``str(error)`` as it is: the CLI on one stderr line, the GUI in a message.
User data in a message goes through :func:`shown`, so a forged key or name can neither make a
message gigabytes long nor move the terminal's cursor.
"""

import reprlib
import unicodedata

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel = 3
_SHORT.maxtuple = _SHORT.maxlist = _SHORT.maxdict = _SHORT.maxset = 4


def printable(text: str) -> str:
    """``text`` with control and format characters (ANSI escapes, newlines, bidi marks) written
    as ``\\x1b``-style escapes, so printing it shows it and does nothing else."""
    return "".join(c if c.isprintable() and unicodedata.category(c) not in ("Cc", "Cf")
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def clipped(text: str, limit: int = 120) -> str:
    """``text`` cut to its first line and ``limit`` characters, made printable (for quoting an
    exception's message inside ours)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return printable(first if len(first) <= limit else first[: limit - 1] + "…")


def shown(value: object, limit: int = 80) -> str:
    """A short, printable rendering of user data for a message: strings quoted and cut to
    ``limit`` characters, other values as a depth- and length-limited ``repr``."""
    if isinstance(value, str):
        return "'" + printable(value if len(value) <= limit else value[: limit - 1] + "…") + "'"
    return printable(_SHORT.repr(value))[: limit * 2]


class EquigenError(Exception):
    """Base for every error the engine raises on purpose."""


class SpecError(EquigenError):
    """An INR spec is malformed or unknown."""


class InvalidINRFile(EquigenError):
    """An INR file cannot be read: not a file we know, unsafe, truncated or mis-shaped."""


class InputError(EquigenError):
    """An input (image, mesh, folder, argument) cannot be used."""


class DamagedFile(InvalidINRFile):
    """A file the engine wrote no longer matches the content hash it was sealed with."""


class EmptyFieldError(EquigenError):
    """A 3D INR has no surface: the field is inside everywhere or nowhere."""


class Cancelled(EquigenError):
    """A long operation was stopped on request."""
