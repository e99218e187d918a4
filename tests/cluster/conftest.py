"""The Redis Cluster suite runs only against a Redis Cluster (make test-redis-cluster):
elsewhere its modules are not collected, rather than skipped."""

from __future__ import annotations

from backends import REDIS_CLUSTER

collect_ignore_glob = [] if REDIS_CLUSTER else ["test_*.py"]
