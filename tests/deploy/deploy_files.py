"""Read the deploy files (Dockerfile, docker-compose.yml) that the deploy tests check."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = (
    "gateway",
    "user-service",
    "post-service",
    "media-service",
    "feed-service",
    "fanout-worker",
    "notification-service",
)


@dataclass(frozen=True)
class ServiceImage:
    """One service target of the Dockerfile: its command and the env it sets."""

    target: str
    command: list[str]
    env: dict[str, str]

    @property
    def host_variable(self) -> str:
        return next(name for name in self.env if name.endswith("_HOST"))

    @property
    def port_variable(self) -> str:
        return next(
            name for name in self.env if name.startswith("PHOTOGRAM_") and name.endswith("PORT")
        )

    @property
    def port(self) -> int:
        return int(self.env[self.port_variable])


def _logical_lines(text: str) -> list[str]:
    """Join backslash continuations and drop comments."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def dockerfile_images() -> dict[str, ServiceImage]:
    """Return the Dockerfile's service targets (stages with a CMD), by target name."""
    images: dict[str, ServiceImage] = {}
    stage = ""
    env: dict[str, str] = {}
    for line in _logical_lines(DOCKERFILE.read_text()):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.search(r"\s+AS\s+(\S+)\s*$", rest, re.IGNORECASE)
            stage = match.group(1) if match else ""
            env = {}
        elif instruction == "ENV":
            env.update(dict(pair.split("=", 1) for pair in rest.split() if "=" in pair))
        elif instruction == "CMD":
            command = json.loads(rest)
            images[stage] = ServiceImage(target=stage, command=command, env=dict(env))
    return images


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def migrate_commands() -> dict[str, list[str]]:
    """Return the migration commands of docker-compose.yml, by the image target they run."""
    commands = {}
    for service in compose()["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command[-1:] == ["migrate"]:
            commands[service["build"]["target"]] = command
    return commands
