"""Dead letters: records a consumer gave up on, kept on a topic for an operator to list and replay.

    python -m photogram_common.deadletters list [--group G] [--all]
    python -m photogram_common.deadletters replay [--group G]

A dead letter carries the original record (topic, partition, offset, key, value), the
consumer group that failed on it, the error and how many attempts it had. `replay`
publishes each outstanding record again to its own topic (every group of that topic sees
it again; consumers are idempotent), then marks it replayed on the dead-letter topic, so it
is listed no more. The bus is the one the PHOTOGRAM_* settings name: Kafka, or in the
embedded mode the bus file in PHOTOGRAM_DATA_DIR (only while the embedded system is
stopped, since it holds that file).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from photogram_common.bus import DEADLETTER_TOPIC, EventBus, Message, OutgoingMessage
from photogram_common.timeutil import to_rfc3339, utcnow

DEAD_LETTER = "dead_letter"
REPLAYED = "replayed"


@dataclass(frozen=True)
class DeadLetter:
    """One record a consumer group gave up on, and why."""

    group: str
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    error: str
    reason: str  # "permanent", "transient" (past its deadline) or "undecodable"
    attempts: int
    dead_at: str = field(default_factory=lambda: to_rfc3339(utcnow()))
    # Where the dead letter itself is on the dead-letter topic (known once read back).
    at: tuple[int, int] | None = None

    def encode(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k not in ("value", "at", "key")}
        body |= {
            "kind": DEAD_LETTER,
            # Informative only: the dead letter's own record key is the original key.
            "key": self.key.encode("utf-8", "backslashreplace").decode(),
            "value_b64": base64.b64encode(self.value).decode(),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for people: the value as text when it is UTF-8."""
        view = {k: v for k, v in asdict(self).items() if k != "value"}
        view["at"] = list(self.at) if self.at else None
        try:
            view["value"] = self.value.decode()
        except UnicodeDecodeError:
            view["value"] = None
        view["value_b64"] = base64.b64encode(self.value).decode()
        return view


def _parse(message: Message) -> tuple[str, Any] | None:
    try:
        body = json.loads(message.value)
        if body.get("kind") == REPLAYED:
            return REPLAYED, (int(body["partition"]), int(body["offset"]))
        if body.get("kind") == DEAD_LETTER:
            letter = DeadLetter(
                group=str(body["group"]),
                topic=str(body["topic"]),
                partition=int(body["partition"]),
                offset=int(body["offset"]),
                key=message.key,
                value=base64.b64decode(body["value_b64"]),
                error=str(body.get("error", "")),
                reason=str(body.get("reason", "")),
                attempts=int(body.get("attempts", 0)),
                dead_at=str(body.get("dead_at", "")),
                at=(message.partition, message.offset),
            )
            return DEAD_LETTER, letter
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


async def dead_letters(
    bus: EventBus, *, group: str | None = None, include_replayed: bool = False
) -> list[DeadLetter]:
    """The dead letters on the bus (of one group), oldest first; replayed ones only if asked."""
    letters: list[DeadLetter] = []
    replayed: set[tuple[int, int]] = set()
    for message in await bus.read_topic(DEADLETTER_TOPIC):
        parsed = _parse(message)
        if parsed is None:
            continue
        kind, item = parsed
        if kind == REPLAYED:
            replayed.add(item)
        elif group is None or item.group == group:
            letters.append(item)
    # In the original order: per key, a replay publishes the records as they first came.
    letters.sort(key=lambda lt: (lt.topic, lt.partition, lt.offset, lt.group))
    if include_replayed:
        return letters
    return [letter for letter in letters if letter.at not in replayed]


async def replay(
    bus: EventBus, *, group: str | None = None, at: Collection[tuple[int, int]] | None = None
) -> list[DeadLetter]:
    """Publish each outstanding dead letter's record to its topic again, then mark it replayed;
    only those `at` these places of the dead-letter topic (partition, offset) when given.

    At least once: a replay that dies between the two steps replays those records again.
    """
    letters = await dead_letters(bus, group=group)
    if at is not None:
        letters = [letter for letter in letters if letter.at in at]
    if not letters:
        return []
    # A record several groups gave up on goes back once: its topic reaches every group.
    originals = {(lt.topic, lt.partition, lt.offset): lt for lt in letters}
    await bus.publish(
        [OutgoingMessage(lt.topic, key=lt.key, value=lt.value) for lt in originals.values()]
    )
    markers = [
        OutgoingMessage(
            DEADLETTER_TOPIC,
            key=lt.key,
            value=json.dumps(
                {
                    "kind": REPLAYED,
                    "partition": lt.at[0],
                    "offset": lt.at[1],
                    "replayed_at": to_rfc3339(utcnow()),
                }
            ).encode(),
        )
        for lt in letters
        if lt.at is not None
    ]
    await bus.publish(markers)
    return letters


async def _run(args: argparse.Namespace) -> int:
    from photogram_common.bus.inprocess import BusInUse
    from photogram_common.runtime import make_bus
    from photogram_common.settings import PlatformSettings

    bus = make_bus(PlatformSettings(), client_id="photogram-deadletters")
    try:
        await bus.start()
    except BusInUse as exc:
        print(f"{exc}: stop the embedded system first", file=sys.stderr)
        return 2
    try:
        if args.command == "list":
            found = await dead_letters(bus, group=args.group, include_replayed=args.all)
            for letter in found:
                print(json.dumps(letter.describe()))
            print(f"{len(found)} dead letter(s)", file=sys.stderr)
        else:
            done = await replay(bus, group=args.group)
            for letter in done:
                print(json.dumps({"replayed": letter.describe()}))
            print(f"{len(done)} record(s) replayed", file=sys.stderr)
    finally:
        await bus.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m photogram_common.deadletters",
        description="List or replay the records consumers gave up on.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="print outstanding dead letters, one JSON a line")
    listing.add_argument("--group", help="only this consumer group's")
    listing.add_argument("--all", action="store_true", help="replayed ones too")
    replaying = commands.add_parser("replay", help="publish them to their topics again")
    replaying.add_argument("--group", help="only this consumer group's")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
