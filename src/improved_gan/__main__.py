"""``python -m improved_gan`` runs the command line (so ``torchrun -m improved_gan`` works)."""

from improved_gan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
