"""``python -m colorgan`` runs the command-line interface."""

from .cli import main

main()
