"""Which address a request is rate-limited by, and PHOTOGRAM_GATEWAY_TRUSTED_PROXIES."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.addresses import ClientAddresses, parse_networks
from gateway.settings import GatewaySettings

BEHIND_PROXIES = ClientAddresses(parse_networks(["10.0.0.0/8", "::1", "192.0.2.1"]))


def test_with_no_trusted_proxy_the_peer_is_the_client_whatever_the_header_says() -> None:
    nobody = ClientAddresses()
    assert nobody.resolve("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"
    assert nobody.resolve("10.1.1.1", ["203.0.113.9, 10.1.1.2"]) == "10.1.1.1"
    assert nobody.resolve(None, ["203.0.113.9"]) == "unknown"


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # A peer that is not a trusted proxy: its header is the client's own, ignored.
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        # A trusted proxy: the address it appended, rightmost.
        ("10.0.0.7", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.7", [], "10.0.0.7"),
        # Whatever the client wrote to the left is not believed.
        ("10.0.0.7", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.7", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
        # A chain of trusted proxies is walked past.
        ("10.0.0.7", ["6.6.6.6, 198.51.100.1, 10.2.3.4, 192.0.2.1"], "198.51.100.1"),
        ("::1", ["198.51.100.1, 10.9.9.9"], "198.51.100.1"),
        # Only trusted hops: the leftmost of them.
        ("10.0.0.7", ["10.0.0.8, 10.0.0.9"], "10.0.0.8"),
        # Garbage where a proxy's address should be: the last address believed.
        ("10.0.0.7", ["198.51.100.1, bogus"], "10.0.0.7"),
        ("10.0.0.7", ["bogus, 10.0.0.9"], "10.0.0.9"),
        # Ports and IPv4-mapped IPv6 addresses are normalised.
        ("10.0.0.7", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.7", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("10.0.0.7", ["::ffff:198.51.100.1"], "198.51.100.1"),
        ("10.0.0.7", ["2001:DB8:0:0::1"], "2001:db8::1"),
        ("10.0.0.7", [" , 198.51.100.1 ,"], "198.51.100.1"),
    ],
)
def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client(
    peer: str, headers: list[str], client: str
) -> None:
    assert BEHIND_PROXIES.resolve(peer, headers) == client


def test_trusted_proxies_are_read_comma_separated_and_none_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PHOTOGRAM_GATEWAY_TRUSTED_PROXIES", raising=False)
    assert GatewaySettings().trusted_proxies == []
    monkeypatch.setenv("PHOTOGRAM_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1,::1")
    assert GatewaySettings().trusted_proxies == ["10.0.0.0/8", "192.0.2.1", "::1"]
    monkeypatch.setenv("PHOTOGRAM_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")
    with pytest.raises(ValidationError):
        GatewaySettings()
