"""Console login (pure): scrypt hashes, signed session cookies, trusted proxy headers, roles."""

from __future__ import annotations

import base64

import pytest

from tocsin.console.auth import (
    Auth,
    Identity,
    UsersFile,
    add_user,
    hash_password,
    load_users,
    verify_password,
)
from tocsin.errors import ConfigError


def test_hash_verifies_only_the_right_password_and_is_salted():
    h = hash_password("correct horse")
    assert h.startswith("scrypt$") and "correct horse" not in h
    assert verify_password("correct horse", h)
    assert not verify_password("correct hors", h)
    assert hash_password("correct horse") != h  # a new salt each time
    assert not verify_password("x", "md5$abc") and not verify_password("x", "garbage")


def test_users_file_round_trip_and_bad_role(tmp_path):
    p = tmp_path / "users.yaml"
    add_user(p, "olga", "operator", "pw1")
    add_user(p, "erik", "engineer", "pw2")
    f = load_users(p)
    assert {k: u.role for k, u in f.users.items()} == {"olga": "operator", "erik": "engineer"}
    assert "pw1" not in p.read_text() and oct(p.stat().st_mode)[-3:] == "600"
    a = Auth(f)
    assert a.login("olga", "pw1") == Identity("olga", "operator")
    assert a.login("olga", "pw2") is None and a.login("nobody", "pw1") is None
    with pytest.raises(ConfigError, match="role must be one of"):
        add_user(p, "x", "admin", "pw")
    p.write_text("users:\n  bad: {role: root}\n")
    with pytest.raises(ConfigError, match="users.bad.role"):
        load_users(p)


def test_cookie_is_signed_and_expires():
    a = Auth(UsersFile(secret="s" * 32), session_s=60)
    c = a.cookie(Identity("olga", "operator"), now=1000.0)
    assert a.from_cookie(c, now=1030.0) == Identity("olga", "operator")
    assert a.from_cookie(c, now=1061.0) is None  # expired
    body = base64.urlsafe_b64decode(c).decode().replace("operator", "engineer")
    assert a.from_cookie(base64.urlsafe_b64encode(body.encode()).decode(), now=1030.0) is None
    other = Auth(UsersFile(secret="t" * 32))
    assert other.from_cookie(c, now=1030.0) is None  # another secret
    assert a.from_cookie("not base64 at all!", now=1030.0) is None


def test_proxy_header_only_from_trusted_addresses_and_roles():
    users = UsersFile.model_validate({"users": {"erik": {"role": "engineer"}}})
    a = Auth(users, proxy_header="X-Forwarded-User", proxy_role_header="X-Forwarded-Role",
             trusted_proxies=frozenset({"10.0.0.5"}))
    h = {"X-Forwarded-User": "erik"}
    assert a.from_proxy("10.0.0.9", h) is None  # not the proxy: header ignored
    assert a.from_proxy("10.0.0.5", h) == Identity("erik", "engineer")  # role from the file
    assert a.from_proxy("10.0.0.5", {"X-Forwarded-User": "ann"}) == Identity("ann", "viewer")
    assert a.from_proxy("10.0.0.5", {"X-Forwarded-User": "ann", "X-Forwarded-Role":
                                     "operator"}) == Identity("ann", "operator")
    assert Auth(users).from_proxy("127.0.0.1", h) is None  # no proxy header configured


def test_roles():
    v, o, e = Identity("v", "viewer"), Identity("o", "operator"), Identity("e", "engineer")
    assert not v.may("ack") and o.may("ack") and o.may("shelve") and o.may("label")
    assert not o.may("remove_from_service") and e.may("remove_from_service")
    assert not o.may("something new")  # unknown actions need an engineer
