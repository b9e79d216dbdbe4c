"""Copy a trained model into resources/models/ for the studio, with float16 network weights.

Run: ``.venv/bin/python packaging/pack_model.py MODEL.safetensors NAME`` → resources/models/NAME.safetensors
(raw-weight and structured 3D models alike; ``equigen recipe`` packs its own model the same way).
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.diffusion.pipeline import load_generator, save_generator

MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model = load_generator(sys.argv[1])
    # no paths of the machine that trained it, only names
    for holder in (model.meta, model.meta.get("train", {})):
        for key in ("corpus", "encoder_file"):
            if holder.get(key):
                holder[key] = Path(holder[key]).name
    out = save_generator(MODELS / f"{sys.argv[2]}.safetensors", model, half=True)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
