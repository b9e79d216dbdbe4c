"""The harness' own image feature network: a small CNN classifier over all classes of a corpus.

Inception (FID) and AlexNet (LPIPS) weights cannot be downloaded here, so the harness trains this
network once per corpus on the corpus' real images (its first-fit INRs rendered on their grid,
source and target classes alike) and caches it in ``CORPUS/bench/``. Its penultimate layer gives
the features for FID, precision/recall, diversity and novelty; its logits give class consistency.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.data.dataset import INRDataset
from engine.data.store import CorpusPaths
from engine.decode import decode_images
from engine.errors import EquigenError, InputError
from engine.progress import Progress, ProgressGen
from engine.tensor_files import read_tensors, write_tensors

CACHE_NAME = "feature-net.safetensors"


@dataclass(frozen=True)
class FeatureNetConfig:
    feature_dim: int = 32  # small: FID needs covariances estimated from tens of samples
    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    holdout: float = 0.1  # share of images kept out to report the classifier's own accuracy
    seed: int = 0


class FeatureNet(nn.Module):
    """Images ``(B, H, W)`` in [0, 1] → logits ``(B, classes)``; ``features`` gives ``(B, feature_dim)``."""

    def __init__(self, classes: list[str], size: int, feature_dim: int = 32):
        super().__init__()
        self.classes = list(classes)
        self.size = size
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(4),
        )
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(64 * 16, 128), nn.GELU(), nn.Linear(128, feature_dim))
        self.head = nn.Linear(feature_dim, len(classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.conv(images[:, None]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(F.gelu(self.features(images)))

    @torch.inference_mode()
    def describe(self, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(N, feature_dim)`` and predicted class indices ``(N,)`` of images ``(N, H, W)``,
        computed where the network is and returned on the CPU."""
        self.eval()
        device = self.head.weight.device
        feats, preds = [], []
        for s in range(0, len(images), batch):
            x = torch.as_tensor(np.asarray(images[s : s + batch], dtype=np.float32)).to(device)
            f = self.features(x)
            feats.append(f.cpu().numpy())
            preds.append(self.head(F.gelu(f)).argmax(1).cpu().numpy())
        if not feats:
            return np.zeros((0, self.head.in_features), np.float32), np.zeros(0, np.int64)
        return np.concatenate(feats), np.concatenate(preds)


def corpus_images(root: str | os.PathLike, split: str = "all", classes=None, batch: int = 1024,
                  device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The corpus' first-fit 2D INRs rendered on their grid (on ``device``, None: the CPU):
    images ``(N, H, W)``, class indices ``(N,)`` and the index rows they came from."""
    ds = INRDataset(root, split=split, init_k=0, classes=classes)
    if ds.spec.in_dim != 2:
        raise InputError(f"{root}: a 3D corpus has no images; the 2D metrics need a 2D corpus")
    params = ds.stacked()
    n = len(ds)
    images = [decode_images(ds.spec, {k: v[s : s + batch] for k, v in params.items()}, device=device)
              for s in range(0, n, batch)]
    size = ds.spec.grid_size
    out = np.concatenate(images) if images else np.zeros((0, size, size), np.float32)
    return out, ds.labels(), ds.rows


def _stamp(root: Path, config: FeatureNetConfig) -> str:
    st = CorpusPaths(root).index.stat()
    return json.dumps({"index_size": st.st_size, "index_mtime_ns": st.st_mtime_ns, "config": asdict(config)})


def train_feature_net(images: np.ndarray, labels: np.ndarray, classes: list[str],
                      config: FeatureNetConfig = FeatureNetConfig(),
                      device: torch.device | None = None) -> ProgressGen[tuple[FeatureNet, float]]:
    """Train the classifier on ``images (N, H, W)`` with ``labels (N,)`` on ``device`` (None: the
    CPU); returns it (on that device) and its accuracy on a held-out share of the images. Every
    random draw is a CPU one, so a seed gives the same order and shifts on any device. Yields
    ``Progress("feature net", epoch, epochs)``."""
    device = device or torch.device("cpu")
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    net = FeatureNet(classes, images.shape[-1], config.feature_dim).to(device)
    order = torch.randperm(len(images), generator=g)
    n_hold = int(len(images) * config.holdout) if len(images) >= 20 else 0
    hold, train_idx = order[:n_hold], order[n_hold:]
    x = torch.as_tensor(images, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    steps = config.epochs * max(1, -(-len(train_idx) // config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps)
    yield Progress("feature net", 0, config.epochs)
    for epoch in range(config.epochs):
        net.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=g)]
        for s in range(0, len(perm), config.batch_size):
            b = perm[s : s + config.batch_size]
            xb = x[b].to(device)
            shift = torch.randint(-1, 2, (2,), generator=g)  # ±1 pixel: features robust to placement
            xb = torch.roll(xb, (int(shift[0]), int(shift[1])), dims=(1, 2))
            loss = F.cross_entropy(net(xb), y[b].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        yield Progress("feature net", epoch + 1, config.epochs, metrics={"loss": float(loss.detach())})
    net.eval()
    if n_hold:
        _, pred = net.describe(images[hold.numpy()])
        accuracy = float(np.mean(pred == labels[hold.numpy()]))
    else:
        accuracy = float("nan")
    return net, accuracy


def feature_net_for(root: str | os.PathLike, config: FeatureNetConfig = FeatureNetConfig(),
                    device: torch.device | None = None) -> ProgressGen[tuple[FeatureNet, dict]]:
    """The corpus' feature network on ``device`` (None: the CPU), trained on first use and then
    read from ``ROOT/bench/`` (the file is written from the CPU).

    Returns the network and its record (classes, held-out accuracy, training images, cached or not).
    Retrains when the corpus index or the config changed.
    """
    device = device or torch.device("cpu")
    root = Path(root)
    path = root / "bench" / CACHE_NAME
    stamp = _stamp(root, config)
    if path.exists():
        try:
            meta, tensors = read_tensors(path, InputError)
            if meta.get("stamp") == stamp:
                info = json.loads(meta["info"])
                net = FeatureNet(info["classes"], info["size"], config.feature_dim)
                net.load_state_dict(tensors)
                return net.to(device).eval(), dict(info, cached=True)
        except (EquigenError, KeyError, ValueError, TypeError, RuntimeError):
            pass  # a damaged or foreign cache is simply retrained
    yield Progress("render corpus", 0, 1)
    images, labels, _ = corpus_images(root, device=device)
    if len(images) == 0:
        raise InputError(f"{root}: the corpus holds no images to train the feature network on")
    classes = INRDataset(root, split="all", init_k=0).classes
    yield Progress("render corpus", 1, 1)
    net, accuracy = yield from train_feature_net(images, labels, classes, config, device)
    info = {"classes": classes, "size": int(images.shape[-1]), "images": int(len(images)),
            "heldout_accuracy": accuracy, "config": asdict(config)}
    write_tensors(path, net.state_dict(), {"stamp": stamp, "info": json.dumps(info)})
    return net, dict(info, cached=False)
