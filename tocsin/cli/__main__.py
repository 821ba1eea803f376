"""`python -m tocsin.cli`: the same as the `tocsin` command."""

from tocsin.cli import main

main()
