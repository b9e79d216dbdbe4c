"""``python -m equigen_app`` and the ``equigen-studio`` entry point."""

import sys


def main() -> int:
    from equigen_app.app import run

    return run(sys.argv)


if __name__ == "__main__":
    raise SystemExit(main())
