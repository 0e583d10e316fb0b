"""`python -m trainlab …`: the command line (torchrun starts processes this way)."""

from trainlab.cli import main

main()
