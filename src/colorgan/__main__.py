"""``python -m colorgan`` runs the command-line interface."""

from colorgan.cli import main

main()
