"""What Photogram's services agree on, and nothing else: the events on the bus (`events`),
the public schemas and their examples (`schemas`, `examples`), the internal wire formats
(`internal`), the Redis key layouts shared state lives under (`keys`), the caller's
identity (`identity`) and the peer ports (`peers`).

A service that calls another depends on a port here, never on a URL or a body built by
hand; `photogram_common.peer_clients` holds the one HTTP adapter of each port, and the
tests' in-memory fakes are kept honest by `tests/contract/test_peers.py`, which runs the
same cases on both. This package depends on pydantic only; the service kit
(`photogram_common`) depends on it, never the other way.
"""
