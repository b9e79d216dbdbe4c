"""Copy a trained model into resources/models/ for the studio, with float16 network weights.

Run: ``.venv/bin/python packaging/pack_model.py MODEL.safetensors NAME`` → resources/models/NAME.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.diffusion.model_file import load_model, save_model

MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model = load_model(sys.argv[1])
    # no paths of the machine that trained it, only names
    if "corpus" in model.meta:
        model.meta["corpus"] = Path(model.meta["corpus"]).name
    train = model.meta.get("train", {})
    if train.get("encoder_file"):
        train["encoder_file"] = Path(train["encoder_file"]).name
    out = save_model(MODELS / f"{sys.argv[2]}.safetensors", model, half=True)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
