"""`python -m pluralfill ...` is the `pluralfill` command (what torchrun and tests start)."""

from pluralfill.cli import main

main()
