"""Console login: local users with scrypt-hashed passwords, or a trusted reverse proxy's header.

Why stdlib only: ``hashlib.scrypt`` (memory-hard, RFC 7914) and ``hmac`` cover a small plant
console without a new dependency. Sessions are signed cookies (HMAC-SHA256 over user, role and
expiry), HttpOnly and SameSite=Strict; the secret comes from the users file or, if absent, is
made per process (logins then end with a restart). A proxy header (``X-Forwarded-User``) is
believed only from the configured proxy addresses, never from anyone else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tocsin.errors import ConfigError

ROLES = ("viewer", "operator", "engineer")
# what each role may do (a higher role may do everything a lower one may)
NEEDS = {"ack": "operator", "shelve": "operator", "unshelve": "operator", "reset": "operator",
         "comment": "operator", "label": "operator", "remove_from_service": "engineer",
         "return_to_service": "engineer"}
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b = lambda x: base64.b64encode(x).decode()  # noqa: E731
    return f"scrypt${_N}${_R}${_P}${b(salt)}${b(h)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt, h = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(base64.b64decode(h)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(h))


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(viewer|operator|engineer)$")
    password: str | None = Field(None, description="scrypt hash from `tocsin console "
                                 "add-user`; none = proxy login only")


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str | None = Field(None, min_length=32, description="session signing key")
    users: dict[str, User] = Field(default_factory=dict)


def load_users(path: str | Path | None) -> UsersFile:
    if path is None or not Path(path).exists():
        return UsersFile()
    try:
        return UsersFile.model_validate(yaml.safe_load(Path(path).read_text()) or {})
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from exc


def add_user(path: str | Path, name: str, role: str, password: str) -> None:
    """Create or update a user in the users file (the password stored hashed only)."""
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    f = load_users(path)
    f.users[name] = User(role=role, password=hash_password(password))
    f.secret = f.secret or secrets.token_hex(32)
    p = Path(path)
    p.write_text(yaml.safe_dump(f.model_dump(exclude_none=True), sort_keys=True))
    p.chmod(0o600)


@dataclass(frozen=True)
class Identity:
    user: str
    role: str

    def may(self, action: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(NEEDS.get(action, "engineer"))


class Auth:
    COOKIE = "tocsin_session"

    def __init__(self, users: UsersFile, *, proxy_header: str | None = None,
                 proxy_role_header: str | None = None,
                 trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"}),
                 session_s: float = 12 * 3600):
        self.users = users
        self.secret = (users.secret or secrets.token_hex(32)).encode()
        self.proxy_header, self.proxy_role_header = proxy_header, proxy_role_header
        self.trusted_proxies = trusted_proxies
        self.session_s = session_s

    def login(self, user: str, password: str) -> Identity | None:
        u = self.users.users.get(user)
        if u is None or not u.password:
            hash_password(password)  # same cost either way: no user enumeration by timing
            return None
        return Identity(user, u.role) if verify_password(password, u.password) else None

    def cookie(self, ident: Identity, now: float | None = None) -> str:
        exp = int((now or time.time()) + self.session_s)
        body = f"{ident.user}|{ident.role}|{exp}"
        sig = hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()
        return base64.urlsafe_b64encode(f"{body}|{sig}".encode()).decode()

    def from_cookie(self, value: str | None, now: float | None = None) -> Identity | None:
        if not value:
            return None
        try:
            user, role, exp, sig = base64.urlsafe_b64decode(value.encode()).decode().split("|")
        except (ValueError, UnicodeDecodeError):
            return None
        good = hmac.new(self.secret, f"{user}|{role}|{exp}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, good) or int(exp) < (now or time.time()):
            return None
        return Identity(user, role) if role in ROLES else None

    def from_proxy(self, remote: str | None, headers) -> Identity | None:
        if not self.proxy_header or remote not in self.trusted_proxies:
            return None
        user = headers.get(self.proxy_header)
        if not user:
            return None
        role = headers.get(self.proxy_role_header) if self.proxy_role_header else None
        if role not in ROLES:
            known = self.users.users.get(user)
            role = known.role if known else "viewer"
        return Identity(user, role)
