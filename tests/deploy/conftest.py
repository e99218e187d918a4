"""Which deployment checks a run collects.

The manifest checks need kustomize (Go-built) and run under `make validate-deploy`, which
installs it; the container-command check needs the real backends and runs under
`make test-real`. A plain `make test` on a bare machine collects neither, rather than
skipping them.
"""

from __future__ import annotations

import os
import shutil

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
