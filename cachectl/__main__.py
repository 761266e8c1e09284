"""``python -m cachectl`` runs the command line."""

from cachectl.cli import main

main()
