"""Images → 2D INRs.

Any image (any size; modes L, RGB, RGBA, LA, palette, 16-bit) becomes a grey frame of the spec's
grid size, bright object on a dark background like MNIST, and is fitted by batched Adam until
PSNR ≥ target.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.checks import at_least, one_of, positive
from engine.errors import InputError, clipped
from engine.fit.loop import FitOutcome, LoopConfig, fit_loop
from engine.functional import Params, forward, image_grid, repeat_params
from engine.inr_io import INR
from engine.progress import ProgressGen
from engine.spec import MNIST_SIREN, INRSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass(frozen=True)
class ImageFitConfig:
    """Defaults measured on this 2-core CPU: 28×28 images reach 30 dB in ~70 steps on average."""

    lr: float = 3e-3
    max_steps: int = 600
    target_psnr: float = 30.0
    batch_size: int = 256
    invert: str = "auto"  # "auto" | "yes" | "no": make the background dark, as in MNIST

    def __post_init__(self):
        positive("the fitting learning rate", self.lr)
        at_least("fitting steps", self.max_steps, 1)
        positive("the target PSNR", self.target_psnr)
        at_least("the fitting batch size", self.batch_size, 1)
        one_of("inversion", self.invert, ("auto", "yes", "no"))


MAX_PIXELS = 4096 * 4096  # decoded at most: RGBA 64 MB; a larger JPEG is decoded smaller (draft)
WORK_SIDE = 1024  # images are brought down to this side before the float conversion (frames are 28²)


def load_gray(path: str | os.PathLike) -> np.ndarray:
    """Read any image file as grey values in [0, 1], ``(H, W)`` float32, at most 1024 a side.

    Transparent images are composited onto the background that contrasts with their content, so
    a dark drawing on a transparent sheet keeps its shape. An image of more than 16 megapixels is
    refused before it is decoded, unless its format can decode at a smaller scale (JPEG).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                im.draft("RGB" if im.mode not in ("L", "1") else "L", (WORK_SIDE, WORK_SIDE))
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"{path}: the image is {im.width} × {im.height} pixels, more than the "
                                 f"{MAX_PIXELS // 2**20} megapixels fitting reads; scale it down first")
            im = ImageOps.exif_transpose(im)
            im.load()
            im = _reduced(im)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise InputError(f"{path}: not a readable image ({clipped(str(e)) or type(e).__name__})") from None
    if im.width == 0 or im.height == 0:
        raise InputError(f"{path}: the image is empty")
    gray = image_to_gray(im)
    if not np.isfinite(gray).all():
        raise InputError(f"{path}: the image holds NaN or infinite pixel values")
    return gray


def _reduced(im: Image.Image) -> Image.Image:
    """``im`` shrunk by a whole factor to at most ``WORK_SIDE`` a side (box filter)."""
    factor = -(-max(im.width, im.height) // WORK_SIDE)
    if factor <= 1:
        return im
    try:
        return im.reduce(factor)
    except (ValueError, NotImplementedError):  # modes reduce() does not take (P, 1, I;16)
        return im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "L").reduce(factor)


def image_to_gray(im: Image.Image) -> np.ndarray:
    """PIL image of any mode → ``(H, W)`` float32 grey in [0, 1].

    Integer modes are read on their own scale (8 or 16 bits). Float images ("F", e.g. TIFFs) are
    read as they are when they lie in [0, 1], else on the 8- or 16-bit scale their maximum
    suggests; NaNs stay NaN for the caller to refuse.
    """
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im, dtype=np.float32) / 65535.0
        return np.clip(a, 0.0, 1.0)
    if im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all():
            return a
        top = float(a.max()) if a.size else 0.0
        if im.mode == "F" and top <= 1.0:
            scale = 1.0
        else:
            scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
        return np.clip(a / scale, 0.0, 1.0)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if alpha.min() >= 1.0:
            return lum
        covered = alpha.sum()
        content = float((lum * alpha).sum() / covered) if covered > 0 else 1.0
        background = 1.0 if content < 0.5 else 0.0
        return (lum * alpha + background * (1 - alpha)).astype(np.float32)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def to_frame(gray: np.ndarray, size: int = 28, invert: str = "auto") -> np.ndarray:
    """Fit a grey image into a ``size × size`` frame keeping its aspect, background dark.

    ``invert="auto"`` inverts when the border is brighter than mid-grey (a dark drawing on light
    paper), because the INRs of every corpus show bright objects on black. Returns float32.
    """
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise InputError("image must be a non-empty 2D grey array")
    if invert == "yes" or (invert == "auto" and _border_mean(a) > 0.5):
        a = 1.0 - a
    h, w = a.shape
    if (h, w) == (size, size):
        return a.copy()
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    im = Image.fromarray(a, mode="F").resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    small = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
    frame = np.zeros((size, size), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    frame[top : top + nh, left : left + nw] = small
    return frame


def _border_mean(a: np.ndarray) -> float:
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return float(border.mean())


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for images with peak value 1."""
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def fit_images(
    frames: np.ndarray | torch.Tensor,
    init: Params,
    spec: INRSpec = MNIST_SIREN,
    config: ImageFitConfig = ImageFitConfig(),
    device: torch.device | None = None,
) -> ProgressGen[FitOutcome]:
    """Fit one INR per frame, all in one batch, on ``device`` (the CPU by default; the weights
    come back on the CPU).

    frames: ``(B, S, S)`` grey in [0, 1], S = ``spec.grid_size``. init: one weight set
    ``(1, *shape)`` shared by all (the corpus' shared initialisation) or ``(B, *shape)``.
    Returns a FitOutcome whose quality is PSNR in dB.
    """
    targets = torch.as_tensor(np.asarray(frames), dtype=torch.float32)
    if targets.dim() != 3 or targets.shape[1:] != (spec.grid_size, spec.grid_size):
        raise InputError(f"frames must be (B, {spec.grid_size}, {spec.grid_size})")
    b = targets.shape[0]
    device = device or torch.device("cpu")
    targets = targets.reshape(b, -1, 1).to(device)
    coords = image_grid(spec.grid_size, spec.domain).to(device)
    start = repeat_params(init, b) if next(iter(init.values())).shape[0] == 1 else init
    start = {k: v.to(device) for k, v in start.items()}

    def loss_fn(params: Params, active: torch.Tensor, step: int):
        err = ((forward(spec, params, coords) - targets[active.to(device)]) ** 2).mean(dim=(1, 2))
        return err, psnr(err.detach())

    def quality_fn(params: Params, active: torch.Tensor) -> torch.Tensor:
        err = ((forward(spec, params, coords) - targets[active.to(device)]) ** 2).mean(dim=(1, 2))
        return psnr(err)

    loop = LoopConfig(lr=config.lr, max_steps=config.max_steps, target=config.target_psnr)
    return (yield from fit_loop(start, loss_fn, quality_fn, loop, stage="fit images"))


def outcome_to_inrs(
    spec: INRSpec, outcome: FitOutcome, metas: list[dict], quality_key: str
) -> list[INR]:
    """Split a batched FitOutcome into INRs whose metadata records the fit quality and steps."""
    per_item_seconds = outcome.seconds / max(1, len(metas))
    inrs = []
    for i, meta in enumerate(metas):
        m = dict(meta)
        m.update({
            quality_key: round(float(outcome.quality[i]), 4),
            "fit_steps": int(outcome.steps[i]),
            "fit_reached_target": bool(outcome.reached[i]),
            "fit_seconds": round(per_item_seconds, 4),
            "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        inrs.append(INR.from_batch(spec, outcome.params, i, m))
    return inrs
