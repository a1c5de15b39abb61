"""`python -m mpspatch.cli`: the same entry point as the `mpspatch` command."""

from mpspatch.cli import main

main()
