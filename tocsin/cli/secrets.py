"""`tocsin secrets ...`: make the secrets a production setup needs (docs/security.md).
Nothing here talks to a service; what is printed is shown once and is not logged."""

from __future__ import annotations

from pathlib import Path

import click

from tocsin.cli.common import Group


@click.group(cls=Group)
def secrets() -> None:
    """Make bearer tokens and keys for a production setup."""


@secrets.command("ingest-token")
def ingest_token() -> None:
    """A bearer token for the HTTP ingest: the token (for the client, shown once) and its
    hash (for the ingest's TOCSIN_INGEST_TOKEN_HASHES)."""
    from tocsin.config.ingest_security import new_token

    tok, h = new_token()
    click.echo(f"token (give it to the client; shown once): {tok}")
    click.echo(f"hash (TOCSIN_INGEST_TOKEN_HASHES of the ingest): {h}")


@secrets.command("pan-key")
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True,
              help="file to write (mode 0600); then TOCSIN_PAN_TOKEN_KEY_FILE=<file>")
def pan_key(out) -> None:
    """Write a random PAN token key (32 bytes, URL-safe) to a new 0600 file."""
    import secrets as rnd

    from tocsin.services.certs import write_secret

    p = Path(out)
    if p.exists():
        raise click.ClickException(f"{p} exists: a new key changes every card token")
    write_secret(p, rnd.token_urlsafe(32))
    click.echo(f"PAN key written to {p}; export TOCSIN_PAN_TOKEN_KEY_FILE={p.resolve()}")


COMMANDS = (secrets,)
