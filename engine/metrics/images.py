"""Distribution metrics on feature vectors (2D): FID, k-NN precision/recall, diversity.

All functions take features as arrays ``(N, F)`` from the harness' own feature network
(``metrics.feature_net``): Inception weights cannot be downloaded here, so these numbers are not
comparable with published FIDs, only with each other.
"""

from __future__ import annotations

import numpy as np


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets ``(N, F)`` and ``(M, F)``: ‖μa−μb‖² + Tr(Σa + Σb − 2(ΣaΣb)^½).

    Tr((ΣaΣb)^½) is computed as the sum of square roots of the eigenvalues of Σa^½ Σb Σa^½, which is
    symmetric positive semi-definite, so rank-deficient covariances (fewer samples than features)
    need no regularisation.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)
    return max(value, 0.0)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(N, M)`` between rows of ``a (N, F)`` and ``b (M, F)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = pairwise_distances(x, x)
    k = min(k, len(x) - 1)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) on k-NN manifolds.

    Precision: share of ``fake`` inside the union of balls around each real point with radius its
    k-th nearest real neighbour. Recall: the same with the roles swapped. Both in [0, 1].
    """
    real_r, fake_r = _knn_radii(real, k), _knn_radii(fake, k)
    d = pairwise_distances(fake, real)  # (F, R)
    precision = float(np.mean((d <= real_r[None, :]).any(axis=1)))
    recall = float(np.mean((d.T <= fake_r[None, :]).any(axis=1)))
    return precision, recall


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean distance over unordered pairs of distinct rows of ``x (N, F)`` (no self-pairs)."""
    n = len(x)
    if n < 2:
        return 0.0
    d = pairwise_distances(x, x)
    return float(d[np.triu_indices(n, 1)].mean())


def relative_diversity(samples: np.ndarray, real: np.ndarray) -> float:
    """Mean pairwise feature distance of the samples over that of real items: 1 matches the class."""
    ref = mean_pairwise_distance(real)
    return mean_pairwise_distance(samples) / ref if ref > 0 else float("nan")


def speckle(images: np.ndarray) -> float:
    """Mean pixel speckle of ``images (N, H, W)`` (uint8 or floats in [0, 1]): the mean of
    |x − median₃ₓ₃(x)| in units of full scale. Clean strokes are smooth, so their 3×3 median is
    themselves except at edges; isolated bright or dark pixels stand out from theirs."""
    x = np.asarray(images, dtype=np.float32)
    if x.max() > 1.0:
        x = x / 255.0
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = x.shape[1:]
    windows = np.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)])
    return float(np.abs(x - np.median(windows, axis=0)).mean())


def relative_speckle(samples: np.ndarray, real: np.ndarray) -> float:
    """``speckle`` of the samples over that of real items: 1 is as clean as the class."""
    ref = speckle(real)
    return speckle(samples) / ref if ref > 0 else float("nan")
