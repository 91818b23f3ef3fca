"""Where webhook deliveries may go: public addresses, plus the networks an operator lists
(`TOPIARY_WEBHOOK_ALLOWED_NETWORKS`). Loopback, link-local (cloud metadata), private, shared,
reserved and multicast addresses are refused, whatever name or numeric spelling leads there.

The API checks a URL's literal host when an endpoint is created or changed (early, readable
422s); the deliverer resolves the name again before every attempt (DNS can change) and connects
to the address it checked, so no later lookup can swap it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL leads somewhere deliveries may not go."""


def _networks(allowed: Iterable[str]) -> list:
    return [ipaddress.ip_network(n, strict=False) for n in allowed]


def _literal(host: str) -> Address | None:
    """The address a literal host names, including the old numeric IPv4 forms (2130706433,
    0x7f.1, 127.1) that resolvers accept; None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def allowed_address(address: Address, allowed: Iterable[str] = ()) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in _networks(allowed)):
        return True
    return address.is_global and not address.is_multicast


def split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or Refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the port is not a number from 0 to 65535") from None
    return parts.scheme, parts.hostname, port


def check_url(url: str, allowed: Iterable[str] = ()) -> str:
    """Refuse a URL whose host is, literally, a forbidden address or a loopback name. Names are
    resolved at delivery time (resolve), not here."""
    _, host, _ = split(url)
    literal = _literal(host)
    if literal is not None and not allowed_address(literal, allowed):
        raise Refused(f"{literal} is not a public address (loopback, private, link-local or reserved)")
    loopback = ipaddress.ip_address("127.0.0.1")
    if literal is None and (host == "localhost" or host.endswith(".localhost")) and not allowed_address(loopback, allowed):
        raise Refused("localhost is not a public address")
    return url


def resolve(host: str, port: int, allowed: Iterable[str] = ()) -> str:
    """The address to connect to for `host`: every address it resolves to must be allowed (a
    name with one internal address among public ones is refused). Raises Refused."""
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise Refused("the host name does not resolve") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    allowed = list(allowed)
    if not addresses or not all(allowed_address(a, allowed) for a in addresses):
        raise Refused("the host resolves to an address that is not allowed")
    return str(addresses[0])
