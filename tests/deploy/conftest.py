"""Which deployment checks a run collects.

The manifest checks need kustomize (Go-built) and run under `make validate-deploy`, which
installs it; the container-command check needs the real backends and runs under
`make test-real`. A plain `make test` on a bare machine collects neither, rather than
skipping them.
"""

from __future__ import annotations

import os
import shutil

import pytest

from backends import REAL

collect_ignore: list[str] = []
if not (
    os.environ.get("PHOTOGRAM_KUSTOMIZE")
    or shutil.which("kustomize")
    or os.environ.get("PHOTOGRAM_REQUIRE_DEPLOY_TOOLS") == "1"
):
    collect_ignore.append("test_manifests.py")
if not REAL:
    collect_ignore.append("test_container_commands.py")


def _has_promtool() -> bool:
    return bool(
        os.environ.get("PHOTOGRAM_PROMTOOL")
        or shutil.which("promtool")
        or os.environ.get("PHOTOGRAM_REQUIRE_DEPLOY_TOOLS") == "1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The checks that run promtool (fetched by `make validate-deploy`) are left out of a run
    without it, like the manifest checks above: deselected, not skipped."""
    if _has_promtool():
        return
    dropped = [item for item in items if "promtool" in item.name]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
