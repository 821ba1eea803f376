"""`python -m tocsin.console ...` = `tocsin console ...` (the same click command)."""

import sys

import click

from tocsin.cli_console import register


@click.group()
def _main() -> None:
    pass


register(_main, _main)
_main(["console", *sys.argv[1:]], prog_name="python -m tocsin.console")
