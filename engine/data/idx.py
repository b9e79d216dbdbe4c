"""MNIST-style idx files (as Debian's dataset-fashion-mnist ships them, gzipped or not)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from engine.errors import InputError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx array; ``.gz`` is decompressed. Raises InputError on a malformed file."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read idx file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise InputError(f"{path}: not an idx file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)) * dtype.itemsize:
        raise InputError(f"{path}: idx file is truncated")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)


def fashion_mnist(split: str = "test", root: str | os.PathLike = FASHION_MNIST_DIR):
    """Fashion-MNIST images ``(N, 28, 28)`` uint8 and labels ``(N,)`` from Debian's package.

    split: ``"train"`` (60k) or ``"test"`` (10k). Raises InputError with the apt command when the
    package is missing.
    """
    root = Path(root)
    prefix = {"train": "train", "test": "t10k"}[split]
    images = root / f"{prefix}-images-idx3-ubyte.gz"
    labels = root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists():
        raise InputError(
            f"Fashion-MNIST not found in {root}; install it with "
            "'apt-get install dataset-fashion-mnist'"
        )
    return read_idx(images), read_idx(labels)
