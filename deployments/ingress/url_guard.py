"""Webhook URLs against server-side request forgery: a URL is accepted only if it is http(s) with
a host, and every address its host resolves to is public, unless it lies in a configured
`allow_networks` range. Private, loopback, link-local, shared (CGNAT), multicast, reserved and
unspecified addresses are refused, and so are IPv6 addresses that carry such an IPv4 address
(IPv4-mapped, NAT64, 6to4, Teredo). The check runs when a URL is accepted and again before each
send, and a send goes to the address that was checked (`Target.pinned`), so a name that
resolves differently a moment later (DNS rebinding) cannot redirect it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> every address the name resolves to (a failure raises OSError).
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedURL(ValueError):
    """Why a URL may not be used as a webhook, in words for the API's error message."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses it resolved to, all allowed."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]

    def pinned(self) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """The URL rewritten to the first checked address, with the Host header (and, for
        https, the TLS server name, so the certificate is still checked against the name) of
        the original: what is connected to is what was checked."""
        host_header = httpx.Request("POST", self.url).headers["host"]
        pinned = self.url.copy_with(host=str(self.addresses[0]))
        extensions: dict[str, Any] = {}
        if self.url.scheme == "https":
            extensions["sni_hostname"] = self.url.host
        return pinned, {"host": host_header}, extensions


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), through the system resolver."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    return None


def _not_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not public"
    embedded = _embedded_ipv4(address)
    if embedded is not None and _not_public(embedded) is not None:
        return f"{_not_public(embedded)} (as {embedded})"
    return None


class UrlGuard:
    def __init__(
        self,
        allow_networks: Iterable[str] = (),
        max_chars: int = 2048,
        resolver: Resolver = resolve,
    ):
        self.allowed: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        )
        self.max_chars = max_chars
        self._resolve = resolver

    def parse(self, url: str) -> httpx.URL:
        """The URL's form alone (no DNS): http(s), a host, no credentials, within the limit."""
        if len(url) > self.max_chars:
            raise RefusedURL(f"the URL is longer than {self.max_chars} characters")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            raise RefusedURL("the URL contains whitespace or control characters")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise RefusedURL(f"the URL is not valid ({exc})") from None
        if parsed.scheme not in ("http", "https"):
            raise RefusedURL("only http and https URLs are accepted")
        if not parsed.host:
            raise RefusedURL("the URL has no host")
        if parsed.userinfo:
            raise RefusedURL("the URL may not contain credentials (user:password@)")
        return parsed

    def check(self, url: str) -> Target:
        """The URL with the addresses it resolves to now; `RefusedURL` if any is not allowed."""
        parsed = self.parse(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(parsed.host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                found = self._resolve(parsed.host, port)
            except (OSError, UnicodeError) as exc:
                raise RefusedURL(f"the host {parsed.host!r} does not resolve ({exc})") from None
            addresses = list(dict.fromkeys(ipaddress.ip_address(a.split("%")[0]) for a in found))
            if not addresses:
                raise RefusedURL(f"the host {parsed.host!r} does not resolve")
        for address in addresses:
            self._check_address(parsed.host, address)
        return Target(parsed, tuple(addresses))

    def _check_address(self, host: str, address: IPAddress) -> None:
        if any(address in network for network in self.allowed):
            return
        kind = _not_public(address)
        if kind is not None:
            named = "" if host == str(address) else f" ({host} resolves to {address})"
            raise RefusedURL(
                f"the address {address} is {kind}{named}; webhooks go to public addresses only "
                "(webhooks.allow_networks in the config lists exceptions)"
            )
