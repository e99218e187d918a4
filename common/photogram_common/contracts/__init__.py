"""What the services agree on: the internal wire formats and the peer ports.

A service that calls another depends on a port here (`peers`), never on a URL or a body
built by hand; `photogram_common.peer_clients` holds the one HTTP adapter of each port,
and the tests' in-memory fakes are kept honest by `tests/contract/test_peers.py`, which
runs the same cases on both.
"""
