"""Opaque API keys: `tpk_<8 hex prefix>_<secret>`. Only a SHA-256 of the whole key is stored (the
secret is 32 random bytes, so a fast hash is enough); the key is shown once, at creation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ApiKey, Tenant, utcnow

SCOPES = ("jobs:read", "jobs:write", "admin")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_key(session: Session, tenant_name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Returns (record, plaintext key). The plaintext is not stored anywhere."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    tenant = get_or_create_tenant(session, tenant_name)
    prefix = f"tpk_{secrets.token_hex(4)}"
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiKey(tenant_id=tenant.id, prefix=prefix, secret_hash=_hash(plaintext), scopes=sorted(set(scopes)))
    session.add(record)
    session.flush()
    return record, plaintext


def verify(session: Session, plaintext: str) -> ApiKey | None:
    """The active key matching `plaintext`, or None. Looks up by prefix, compares in constant time."""
    parts = plaintext.split("_")
    if len(parts) < 3 or parts[0] != "tpk":
        return None
    record = session.scalar(select(ApiKey).where(ApiKey.prefix == f"tpk_{parts[1]}"))
    if record is None or record.revoked_at is not None:
        return None
    return record if hmac.compare_digest(record.secret_hash, _hash(plaintext)) else None


def revoke(session: Session, record: ApiKey) -> None:
    record.revoked_at = utcnow()


# -- download links: a URL that stands in for the Authorization header on one GET ---------------
# A browser streams a plain link straight to disk, but cannot add a header to it. The link is
# signed with the sha256 of the key that asked for it (known to the server, never shown), so it
# needs no shared server secret, dies with the key's revocation, and opens only its own path.
LINK_SECONDS = 300  # time to start the download; one that started runs to its end


def _link_mac(record: ApiKey, path: str, expires: int) -> str:
    mac = hmac.new(bytes.fromhex(record.secret_hash), f"{record.prefix}|{path}|{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def sign_link(record: ApiKey, path: str, now: float) -> tuple[str, int]:
    """(the link token for GET `path`, its expiry as a Unix time)."""
    expires = int(now) + LINK_SECONDS
    return f"{record.prefix}.{expires}.{_link_mac(record, path, expires)}", expires


def verify_link(session: Session, token: str, path: str, now: float) -> ApiKey | None:
    """The active key that signed `token` for `path`, if the link has not expired; else None."""
    try:
        prefix, expires_text, mac = token.split(".")
        expires = int(expires_text)
    except ValueError:
        return None
    if expires < now:
        return None
    record = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if record is None or record.revoked_at is not None:
        return None
    return record if hmac.compare_digest(_link_mac(record, path, expires), mac) else None
