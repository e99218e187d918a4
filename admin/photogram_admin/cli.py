"""photogram-admin: the operator's commands (docs/operations.md).

    photogram-admin rebuild-feeds (--user ID | --all) [--concurrency N] [--dry-run]
    photogram-admin reconcile-counts [--dry-run]
    photogram-admin dead-letters list [--group G] [--all]
    photogram-admin dead-letters replay (--id P:O ... | --all) [--group G] [--dry-run]
    photogram-admin sweep-media [--older-than 1h] [--dry-run]
    photogram-admin status

Every command works on the stores the PHOTOGRAM_* settings name, as the services do, and
is idempotent: one cut short (Ctrl-C) keeps what it did, and is run again to finish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from datetime import timedelta

from pydantic import ValidationError

from photogram_admin.counts import reconcile_counts
from photogram_admin.feeds import count_users, rebuild_feeds, user_ids
from photogram_admin.media import preview_sweep, sweep_media
from photogram_admin.sources import DatabasePostCatalog
from photogram_admin.status import embedded_lag, kafka_lag, outbox_status
from photogram_admin.stores import Stores, Unavailable
from photogram_common.deadletters import dead_letters, replay
from photogram_common.settings import PlatformSettings
from post_service.models import outbox as posts_outbox
from user_service.models import outbox as users_outbox

INTERRUPTED = 130
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """'90s', '30m', '1h', '2d'."""
    found = _DURATION.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 1h, 2d)")
    return timedelta(seconds=float(found[1]) * _UNITS[found[2]])


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _rebuild_feeds(stores: Stores, args: argparse.Namespace) -> int:
    feed = stores.feed()
    users_db = stores.database("user-service")
    if args.user is not None:
        report = await rebuild_feeds(feed, [args.user], total=1, dry_run=args.dry_run)
    else:
        total = await count_users(users_db)
        report = await rebuild_feeds(
            feed,
            user_ids(users_db),
            total=total,
            concurrency=args.concurrency,
            dry_run=args.dry_run,
        )
    for user_id, error in report.failed[:20]:
        say(f"user {user_id}: {error}")
    rate = report.users / report.seconds if report.seconds else 0.0
    if args.dry_run:
        print(f"dry run: would rebuild {report.users} timeline(s); {report.built_before} built now")
    else:
        print(
            f"rebuilt {report.rebuilt} timeline(s), {report.busy} left to a rebuild under way,"
            f" {len(report.failed)} failed, in {report.seconds:.1f} s ({rate:,.0f} users/s)"
        )
    return 1 if report.failed else 0


async def _reconcile(stores: Stores, args: argparse.Namespace) -> int:
    redis = None if args.dry_run or not stores.platform.redis_url else stores.redis()
    found = await reconcile_counts(
        users_db=stores.database("user-service"),
        posts_db=stores.database("post-service"),
        dry_run=args.dry_run,
        redis=redis,
        report=lambda mismatch: print(mismatch.describe(), flush=True),
    )
    fixed = sum(m.fixed for m in found)
    prefix = "dry run: " if args.dry_run else ""
    print(f"{prefix}{len(found)} mismatch(es), {fixed} fixed")
    if len(found) > fixed and not args.dry_run:
        say("posts_count left as it is: post events of those authors are in flight; run again")
    return 0


async def _dead_letters(stores: Stores, args: argparse.Namespace) -> int:
    bus = await stores.bus()
    if args.action == "list":
        letters = await dead_letters(bus, group=args.group, include_replayed=args.all)
        for letter in letters:
            print(json.dumps({"id": _letter_id(letter.at), **letter.describe()}))
        say(f"{len(letters)} dead letter(s)")
        return 0
    at = None if args.all else {_parse_id(i) for i in args.id}
    if args.dry_run:
        letters = [
            lt for lt in await dead_letters(bus, group=args.group) if at is None or lt.at in at
        ]
        for letter in letters:
            print(json.dumps({"would_replay": {"id": _letter_id(letter.at), **letter.describe()}}))
        say(f"dry run: {len(letters)} record(s) would be replayed")
        return 0
    done = await replay(bus, group=args.group, at=at)
    for letter in done:
        print(json.dumps({"replayed": {"id": _letter_id(letter.at), **letter.describe()}}))
    say(f"{len(done)} record(s) replayed")
    return 0


def _letter_id(at: tuple[int, int] | None) -> str | None:
    return f"{at[0]}:{at[1]}" if at else None


def _parse_id(text: str) -> tuple[int, int]:
    partition, _, offset = text.partition(":")
    try:
        return int(partition), int(offset)
    except ValueError:
        raise Unavailable(f"not a dead letter's id: {text!r} (partition:offset)") from None


async def _sweep(stores: Stores, args: argparse.Namespace) -> int:
    service = await stores.media()
    if args.dry_run:
        posts = DatabasePostCatalog(stores.database("post-service"))
        seen = await preview_sweep(service, posts, grace=args.older_than)
        print(
            f"dry run: {seen.orphans} orphan media would be deleted, {seen.held} found held by"
            f" a live post, {seen.deleting} unfinished deletion(s) finished"
        )
        return 0
    counts = await sweep_media(service, grace=args.older_than)
    print(
        f"{counts['pending']} orphan media deleted with their objects, {counts['attached']}"
        f" held by a live post, {counts['deleting']} unfinished deletion(s) finished"
    )
    return 0


async def _status(stores: Stores, args: argparse.Namespace) -> int:
    platform = stores.platform
    from photogram_common.bus.inprocess import InProcessEventBus

    print("outbox (unsent rows, oldest):")
    for service, table in (("user-service", users_outbox), ("post-service", posts_outbox)):
        try:
            found = await outbox_status(
                service, stores.database(service), table, bus=InProcessEventBus()
            )
        except Unavailable as exc:
            print(f"  {service}: {exc}")
            continue
        print(f"  {service}: {found.unsent} unsent, oldest {found.oldest_seconds:.1f} s")
    if platform.kafka_bootstrap:
        lags = await kafka_lag(platform.kafka_bootstrap, prefix=platform.kafka_prefix)
        where = "Kafka"
    elif platform.embedded:
        lags = embedded_lag(platform.data_dir / "bus.db")
        where = f"the embedded bus, {platform.data_dir / 'bus.db'}"
    else:
        print("consumer groups: no PHOTOGRAM_KAFKA_BOOTSTRAP, no bus to read")
        return 0
    print(f"consumer groups ({where}; lag = end - committed):")
    for lag in lags:
        print(
            f"  {lag.group} {lag.topic}[{lag.partition}]: lag {lag.lag}"
            f" (committed {lag.committed}, end {lag.end})"
        )
    if not lags:
        print("  none has committed an offset yet")
    return 0


COMMANDS = {
    "rebuild-feeds": _rebuild_feeds,
    "reconcile-counts": _reconcile,
    "dead-letters": _dead_letters,
    "sweep-media": _sweep,
    "status": _status,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="photogram-admin",
        description="Operator commands on the stores the PHOTOGRAM_* settings name.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    feeds = commands.add_parser("rebuild-feeds", help="rebuild home timelines from the databases")
    who = feeds.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="one user's")
    who.add_argument("--all", action="store_true", help="every user's")
    feeds.add_argument("--concurrency", type=int, default=16, help="rebuilds at once (16)")
    feeds.add_argument("--dry-run", action="store_true", help="count them, change nothing")
    counts = commands.add_parser(
        "reconcile-counts", help="check stored counts against their rows and fix them"
    )
    counts.add_argument("--dry-run", action="store_true", help="report only")
    letters = commands.add_parser("dead-letters", help="records consumers gave up on")
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="outstanding dead letters, one JSON a line")
    listing.add_argument("--group", help="only this consumer group's")
    listing.add_argument("--all", action="store_true", help="replayed ones too")
    replaying = actions.add_parser("replay", help="publish them to their topics again")
    which = replaying.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", nargs="+", help="these (partition:offset, as `list` shows)")
    which.add_argument("--all", action="store_true", help="every outstanding one")
    replaying.add_argument("--group", help="only this consumer group's")
    replaying.add_argument("--dry-run", action="store_true", help="show them, replay nothing")
    sweep = commands.add_parser("sweep-media", help="delete media no post holds")
    sweep.add_argument("--older-than", type=duration, default=timedelta(hours=1), help="grace (1h)")
    sweep.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    commands.add_parser("status", help="outboxes and consumer groups' lag")
    return top


async def run(args: argparse.Namespace) -> int:
    stores = Stores(PlatformSettings())
    try:
        return await COMMANDS[args.command](stores, args)
    except Unavailable as exc:
        say(f"photogram-admin {args.command}: {exc}")
        return 2
    finally:
        await stores.close()


def settings_errors(exc: ValidationError) -> list[str]:
    """A settings class's refusal as one line per field, without pydantic's trailer."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"])
        lines.append(f"{field}: {error['msg']}" if field else str(error["msg"]))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except ValidationError as exc:
        say(f"photogram-admin {args.command}: the settings ({exc.title}) are not valid:")
        for line in settings_errors(exc):
            say(f"  {line}")
        return 2
    except KeyboardInterrupt:
        say(
            f"\nphotogram-admin {args.command}: interrupted; what was done is kept"
            " (each step is idempotent): run it again to finish"
        )
        return INTERRUPTED
