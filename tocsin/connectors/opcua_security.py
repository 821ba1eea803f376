"""Is an OPC UA connection secure enough? The connector asks before it connects and warns
loudly (a multi-line WARNING at start-up) when it would talk to a server that is not on this
machine without signing and encryption: anyone on the path could then read and forge the
readings, and a username/password would cross the network in clear.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

log = logging.getLogger("tocsin.connectors.opcua")
LOCAL_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_local(endpoint: str) -> bool:
    """Does ``opc.tcp://host:port/...`` name this machine (loopback only)?"""
    host = (urlsplit(endpoint).hostname or "").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_warning(endpoint: str, mode: str | None, has_password: bool) -> str | None:
    """The warning for this connection, or None when it is local or signed and encrypted."""
    if is_local(endpoint) or mode == "SignAndEncrypt":
        return None
    what = "without security (SecurityPolicy None)" if mode is None else \
        "with signing only (Sign): readings are readable by anyone on the path"
    lines = [f"OPC UA connection to {endpoint} {what}.",
             "This server is not on this machine: readings can be read" +
             (" and forged" if mode is None else "") + " on the network."]
    if has_password and mode is None:
        lines.append("The username and password are sent IN CLEAR.")
    lines.append("Configure `security: {policy: Basic256Sha256, mode: SignAndEncrypt, "
                 "certificate: ..., private_key: ..., server_certificate: ...}` "
                 "(docs/security.md).")
    return "\n  ".join(lines)


def warn_if_insecure(name: str, endpoint: str, mode: str | None, has_password: bool) -> bool:
    msg = insecure_warning(endpoint, mode, has_password)
    if msg:
        log.warning("%s: INSECURE %s", name, msg)
    return msg is not None
