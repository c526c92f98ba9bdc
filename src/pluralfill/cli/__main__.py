"""`python -m pluralfill.cli`, as `python -m pluralfill`."""

from pluralfill.cli import main

main()
