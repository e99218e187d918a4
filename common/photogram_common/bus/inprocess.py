"""An in-process event bus with Kafka's semantics: partitions by key, groups, committed offsets.

Given a file, the bus keeps its log and the groups' committed offsets in SQLite, so what was
published survives a restart (or a crash) of the process until each group has handled it, as
on Kafka; records are kept for a retention, then dropped. Without a file it is memory-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import aiosqlite
import orjson

from photogram_common.bus import Handler, Headers, Message, OutgoingMessage, Stopped
from photogram_common.metrics import CONSUMER_LAG, current_service

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (topic TEXT NOT NULL, partition INTEGER NOT NULL,"
    ' "offset" INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,'
    ' appended_at REAL NOT NULL, headers BLOB, PRIMARY KEY (topic, partition, "offset"))',
    "CREATE INDEX IF NOT EXISTS ix_records_appended_at ON records (appended_at)",
    "CREATE TABLE IF NOT EXISTS offsets (grp TEXT NOT NULL, topic TEXT NOT NULL,"
    ' partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, PRIMARY KEY (grp, topic, partition))',
)


class BusInUse(RuntimeError):
    """Another bus (another process, e.g. `make run`) has the log file open."""


def _key_bytes(key: str) -> bytes:
    # Kafka keys are bytes; a key that is not UTF-8 travels as surrogate escapes.
    return key.encode("utf-8", "surrogateescape")


def _headers_blob(headers: Headers) -> bytes | None:
    # Latin-1 keeps every byte of a value as one character, so the JSON round trip is exact.
    if not headers:
        return None
    return orjson.dumps([[name, value.decode("latin-1")] for name, value in headers])


def _headers_of(blob: bytes | None) -> Headers:
    if not blob:
        return ()
    return tuple((str(name), str(value).encode("latin-1")) for name, value in orjson.loads(blob))


class _PartitionLog:
    """One partition: the records from `base` on, with the wall time each was appended."""

    __slots__ = ("base", "messages", "times")

    def __init__(self, base: int = 0) -> None:
        self.base = base
        self.messages: list[Message] = []
        self.times: list[float] = []

    @property
    def end(self) -> int:
        return self.base + len(self.messages)

    def at(self, offset: int) -> Message:
        return self.messages[offset - self.base]

    def append(self, message: Message, at: float) -> None:
        self.messages.append(message)
        self.times.append(at)

    def drop_before(self, cutoff: float) -> None:
        keep = 0
        while keep < len(self.times) and self.times[keep] < cutoff:
            keep += 1
        if keep:
            del self.messages[:keep]
            del self.times[:keep]
            self.base += keep


class InProcessEventBus:
    """Keeps each topic as partitioned logs; consumers resume from committed offsets."""

    def __init__(
        self,
        *,
        partitions: int = 4,
        retry_delay: float = 0.2,
        path: Path | None = None,
        retention: timedelta = timedelta(days=7),
        purge_every_seconds: float = 3600,
    ) -> None:
        self._partitions = partitions
        self._retry_delay = retry_delay
        self._path = path
        self._retention = retention
        self._purge_every = purge_every_seconds
        self._next_purge = 0.0
        self._logs: dict[str, list[_PartitionLog]] = {}
        self._committed: dict[tuple[str, str, int], int] = defaultdict(int)
        self._dirty: set[tuple[str, str, int]] = set()
        self._appended = asyncio.Condition()
        self._publishing = asyncio.Lock()
        self._db: aiosqlite.Connection | None = None
        self._lock_fd: int | None = None

    @property
    def durable(self) -> bool:
        return self._path is not None

    async def start(self) -> None:
        if self._path is None or self._db is not None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            db = await aiosqlite.connect(self._path)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                await db.execute(statement)
            async with db.execute("PRAGMA table_info(records)") as info:
                columns = {row[1] async for row in info}
            if "headers" not in columns:  # a file written before records had headers
                await db.execute("ALTER TABLE records ADD COLUMN headers BLOB")
            await db.commit()
            self._db = db
            await self._purge()
            await self._load()
        except BaseException:
            await self.close()
            raise

    def _lock(self) -> None:
        assert self._path is not None
        fd = os.open(f"{self._path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BusInUse(f"{self._path} is in use by another process") from None
        self._lock_fd = fd

    async def _load(self) -> None:
        assert self._db is not None
        self._logs.clear()
        self._committed.clear()
        query = 'SELECT topic, partition, "offset", key, value, appended_at, headers FROM records'
        async with self._db.execute(query + ' ORDER BY topic, partition, "offset"') as rows:
            async for topic, partition, offset, key, value, at, headers in rows:
                logs = self._log(topic)
                while partition >= len(logs):
                    logs.append(_PartitionLog())
                plog = logs[partition]
                if not plog.messages:
                    plog.base = offset
                key_text = bytes(key).decode("utf-8", "surrogateescape")
                message = Message(
                    topic, partition, offset, key_text, bytes(value), _headers_of(headers)
                )
                plog.append(message, at)
        async with self._db.execute('SELECT grp, topic, partition, "offset" FROM offsets') as rows:
            async for group, topic, partition, offset in rows:
                self._committed[(group, topic, partition)] = offset
                logs = self._log(topic)
                while partition >= len(logs):
                    logs.append(_PartitionLog())
                if not logs[partition].messages:
                    logs[partition].base = max(logs[partition].base, offset)

    async def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self.flush_offsets()
            await self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def ping(self) -> None:
        if self._path is not None and self._db is None:
            raise RuntimeError("bus not started")

    def _log(self, topic: str) -> list[_PartitionLog]:
        return self._logs.setdefault(topic, [_PartitionLog() for _ in range(self._partitions)])

    def partition_for(self, key: str) -> int:
        return zlib.crc32(_key_bytes(key)) % self._partitions

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self._path is not None and self._db is None:
            raise RuntimeError("bus not started")
        # One publish at a time: offsets are taken in the order the records become durable.
        async with self._publishing:
            now = time.time()
            ends: dict[tuple[str, int], int] = {}
            staged: list[Message] = []
            for out in messages:
                partition = self.partition_for(out.key)
                offset = ends.get((out.topic, partition), self._log(out.topic)[partition].end)
                ends[(out.topic, partition)] = offset + 1
                staged.append(
                    Message(out.topic, partition, offset, out.key, out.value, out.headers)
                )
            if self._db is not None:
                await self._db.executemany(
                    'INSERT INTO records (topic, partition, "offset", key, value, appended_at,'
                    " headers) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            m.topic,
                            m.partition,
                            m.offset,
                            _key_bytes(m.key),
                            m.value,
                            now,
                            _headers_blob(m.headers),
                        )
                        for m in staged
                    ],
                )
                await self._db.commit()
            async with self._appended:
                for message in staged:
                    self._log(message.topic)[message.partition].append(message, now)
                self._appended.notify_all()

    async def read_topic(self, topic: str) -> list[Message]:
        return [m for plog in self._log(topic) for m in plog.messages]

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._committed[(group, topic, partition)]

    def commit(self, group: str, message: Message) -> None:
        key = (group, message.topic, message.partition)
        if message.offset + 1 > self._committed[key]:
            self._committed[key] = message.offset + 1
            self._dirty.add(key)

    async def flush_offsets(self) -> None:
        """Write the offsets committed since the last flush (a restart resumes from them)."""
        if self._db is None:
            self._dirty.clear()
            return
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            try:
                await self._db.executemany(
                    "INSERT INTO offsets VALUES (?, ?, ?, ?) ON CONFLICT (grp, topic, partition)"
                    ' DO UPDATE SET "offset" = max("offset", excluded."offset")',
                    [(*key, self._committed[key]) for key in dirty],
                )
                await self._db.commit()
            except BaseException:
                self._dirty |= dirty
                raise
        if time.monotonic() >= self._next_purge:
            await self._purge()

    async def _purge(self) -> None:
        """Drop records older than the retention, from the file and from memory."""
        self._next_purge = time.monotonic() + self._purge_every
        cutoff = time.time() - self._retention.total_seconds()
        if self._db is not None:
            # Each partition's newest record stays: it holds the partition's next offset.
            await self._db.execute(
                'DELETE FROM records WHERE appended_at < ? AND "offset" < (SELECT max("offset")'
                " FROM records AS newer WHERE newer.topic = records.topic"
                " AND newer.partition = records.partition)",
                (cutoff,),
            )
            await self._db.commit()
            for logs in self._logs.values():
                for plog in logs:
                    plog.drop_before(cutoff)

    def _position(self, group: str, topic: str, partition: int, plog: _PartitionLog) -> int:
        # Records past the retention are gone: a group behind them resumes at the oldest kept.
        return max(self.committed(group, topic, partition), plog.base)

    def pending(self, group: str, topics: Sequence[str]) -> list[Message]:
        """The next uncommitted message of each partition, in partition order."""
        heads = []
        for topic in topics:
            for partition, plog in enumerate(self._log(topic)):
                offset = self._position(group, topic, partition, plog)
                if offset < plog.end:
                    heads.append(plog.at(offset))
        return heads

    def measure_lag(self, group: str, topics: Sequence[str]) -> None:
        """Set the group's lag gauge of each partition (photogram_common.metrics)."""
        service = current_service()
        for topic in topics:
            for partition, plog in enumerate(self._log(topic)):
                behind = plog.end - self._position(group, topic, partition, plog)
                CONSUMER_LAG.labels(service, group, topic, str(partition)).set(behind)

    def lag(self, group: str, topics: Sequence[str]) -> int:
        return sum(
            plog.end - self._position(group, topic, partition, plog)
            for topic in topics
            for partition, plog in enumerate(self._log(topic))
        )

    async def wait_for_messages(self, group: str, topics: Sequence[str]) -> None:
        async with self._appended:
            await self._appended.wait_for(lambda: bool(self.pending(group, topics)))

    def consumer(self, *, group: str, topics: Sequence[str], handler: Handler) -> InProcessConsumer:
        return InProcessConsumer(self, group=group, topics=list(topics), handler=handler)


class InProcessConsumer:
    """One member of a group; handles the head of each partition, then commits it."""

    def __init__(
        self, bus: InProcessEventBus, *, group: str, topics: list[str], handler: Handler
    ) -> None:
        self._bus = bus
        self._group = group
        self._topics = topics
        self._handler = handler
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            # Also when cancelled: what was handled is not handled again after a restart.
            await self._bus.flush_offsets()

    async def _run(self) -> None:
        while not self._stopped.is_set():
            heads = self._bus.pending(self._group, self._topics)
            self._bus.measure_lag(self._group, self._topics)
            if not heads:
                await self._bus.flush_offsets()
                waiter = asyncio.ensure_future(
                    self._bus.wait_for_messages(self._group, self._topics)
                )
                stopper = asyncio.ensure_future(self._stopped.wait())
                try:
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    stopper.cancel()
                continue
            for message in heads:
                if self._stopped.is_set():
                    return
                await self._deliver(message)
            await self._bus.flush_offsets()

    async def _deliver(self, message: Message) -> None:
        """Handle one message and commit it, unless the handler failed or left it."""
        try:
            await self._handler(message)
        except Stopped:
            return
        except Exception:
            # Not committed: the same message comes back after a pause, as with Kafka.
            log.exception("handler failed; will retry", extra={"topic": message.topic})
            await asyncio.sleep(self._bus._retry_delay)
            return
        self._bus.commit(self._group, message)

    async def stop(self) -> None:
        self._stopped.set()

    def owns(self, message: Message) -> bool:
        return True  # one member per group in a process: every partition is its own
