"""The near-copy rule, shared by images and shapes, so copying the shots cannot pass as quality.

A sample is a near copy when it is closer to its nearest shot than 90% of the unseen real items of
the class are to theirs: the threshold is the 10th percentile of the real items' nearest-shot
distances. Real items therefore score 10% by construction and exact copies of the shots 100%. A
threshold from typical real-to-real distances would miscount when real items cluster by style
(several fonts of one family are each other's near copies without copying anything).
"""

from __future__ import annotations

import numpy as np

NEAR_COPY_QUANTILE = 0.10


def nearest_distances(distances: np.ndarray) -> np.ndarray:
    """Row-wise minimum of a distance matrix ``(N, K)`` (N items against K shots): ``(N,)``."""
    return np.asarray(distances, dtype=np.float64).min(axis=1)


def near_copy_rate(sample_to_shots: np.ndarray, real_to_shots: np.ndarray,
                   quantile: float = NEAR_COPY_QUANTILE) -> float:
    """Share of samples whose nearest-shot distance is below the ``quantile`` of the real items'.

    sample_to_shots ``(N, K)`` and real_to_shots ``(M, K)``: distances in the same units (feature
    distance for images, Chamfer distance for shapes). Returns a fraction in [0, 1].
    """
    threshold = np.quantile(nearest_distances(real_to_shots), quantile)
    d = nearest_distances(sample_to_shots)
    return float(np.mean((d < threshold) | (d <= 0.0)))  # an exact copy is always a near copy
