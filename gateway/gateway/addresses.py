"""The client's address: the TCP peer's, or what a configured proxy says it forwarded for."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR ranges (`10.0.0.0/8`, `::1`); a malformed one is a ValueError."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address(raw: str) -> Address | None:
    text = raw.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    """Resolves the address a request is rate-limited by.

    With no trusted proxies (the default) it is the TCP peer's, and `X-Forwarded-For` is
    ignored: anyone can send that header. When the peer is a trusted proxy, the header is
    read from the right (each proxy appends the address it received from), skipping trusted
    proxies; the first address that is not one is the client's. What lies left of it was
    written by the client and is never believed.
    """

    def __init__(self, trusted: Sequence[Network] = ()) -> None:
        self._trusted = tuple(trusted)

    def _is_trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        if peer is None:
            return "unknown"
        if not self._trusted or not self._is_trusted(_address(peer)):
            return peer
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # Not an address a proxy of ours wrote: stop at the last one we believe.
                return client
            client = str(address)
            if not self._is_trusted(address):
                return client
        return client
