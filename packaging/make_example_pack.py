"""Write an example pack: shots of a held-out class as meshes or images, and as INR files of the shipped base.

Run: ``.venv/bin/python packaging/make_example_pack.py --corpus CORPUS --family mug [--count 10]
--out resources/examples/mugs`` (``engine/data/example_pack.py``; ``equigen recipe`` writes its
model's pack the same way).
"""

from __future__ import annotations

import argparse

from engine.data.example_pack import write_example_pack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--family", required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    written = write_example_pack(args.corpus, args.family, args.out, args.count)
    print(f"wrote {len(written)} examples and their INR files to {args.out}")


if __name__ == "__main__":
    main()
