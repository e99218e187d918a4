# ruff: noqa: S603, S607, ASYNC220, ASYNC240 (local processes the suite starts; quick file reads)
"""The fault suite's own backends and services, apart from everything else on the machine.

The shared backends of `scripts/backends.sh` serve every other suite and the benches at
the same time, so the faults are done to a stack of the suite's own: a PostgreSQL cluster,
a Redis server and a Kafka broker started here, on their own ports, data and run directory
(`.backends/faults`), with their own databases (`photogram_faults_*`), Redis database
number (7) and Kafka topic prefix (`faults.`). The broker runs in a network namespace
made here, reached through a veth pair, so that latency and loss can be put between it and
the services. Only the object store is shared (SeaweedFS from `scripts/backends.sh`, a
bucket of the suite's own): no case touches it.

The six services run as in `python -m photogram_runner up` (the same commands and
environment: `python -m <service> [migrate]`, PHOTOGRAM_MODE=distributed), started here so
that one of them can be killed, stopped or doubled while the others keep running.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("PHOTOGRAM_FAULTS_DIR", REPO / ".backends" / "faults"))
SUPPORT = REPO / "scripts" / "backends"
PYCACHE = RUN.parent / "faults-pycache"
# The code under test, copied at the start: a service restarted mid-run runs the same code
# as the ones still running, whatever is edited in the work tree meanwhile.
SOURCES = {
    "contracts": "photogram_contracts",
    "common": "photogram_common",
    "gateway": "gateway",
    "user-service": "user_service",
    "post-service": "post_service",
    "media-service": "media_service",
    "feed-service": "feed_service",
    "fanout-worker": "fanout_worker",
    "notification-service": "notification_service",
    "runner": "photogram_runner",
}

NETNS = "photogram-faults"
VETH_HOST, VETH_NS = "pgfaults0", "pgfaults1"
# The two ends of the veth pair: this namespace's end and the broker's (a /30 of their own,
# inside a namespace the suite made; nothing leaves the machine).
HOST_ADDR, BROKER_ADDR = "10.253.71.1", "10.253.71.2"

PG_USER, PG_PASSWORD = "photogram", "photogram-faults"
DATABASES = {
    "users": "photogram_faults_users",
    "posts": "photogram_faults_posts",
    "media": "photogram_faults_media",
}
REDIS_DB = 7
KAFKA_PREFIX = "faults."
PARTITIONS = 4
BUCKET = "photogram-faults"

# name: (module, env prefix of its port, migrated)
SERVICES: dict[str, tuple[str, str, bool]] = {
    "user-service": ("user_service", "PHOTOGRAM_USERS", True),
    "post-service": ("post_service", "PHOTOGRAM_POSTS", True),
    "media-service": ("media_service", "PHOTOGRAM_MEDIA", True),
    "feed-service": ("feed_service", "PHOTOGRAM_FEED", False),
    "fanout-worker": ("fanout_worker", "PHOTOGRAM_FANOUT", False),
    "gateway": ("gateway", "PHOTOGRAM", False),
}
SECOND_WORKER = "fanout-worker-2"


class StackError(RuntimeError):
    """A backend or service that could not be started (again)."""


@dataclass(frozen=True)
class Ports:
    gateway: int = 8700
    users: int = 8701
    posts: int = 8702
    media: int = 8703
    feed: int = 8704
    fanout: int = 8705
    fanout2: int = 8706
    pg: int = 55732
    redis: int = 56779
    kafka: int = 59792
    controller: int = 59793

    def of(self, service: str) -> int:
        return {
            "gateway": self.gateway,
            "user-service": self.users,
            "post-service": self.posts,
            "media-service": self.media,
            "feed-service": self.feed,
            "fanout-worker": self.fanout,
            SECOND_WORKER: self.fanout2,
        }[service]


def port_busy(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    return True


async def run(*command: str, timeout: float = 60, check: bool = True) -> str:  # noqa: ASYNC109
    """Run a command without blocking the loop (the workload goes on meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise StackError(f"{' '.join(command)}: no answer within {timeout:.0f} s") from None
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise StackError(f"{' '.join(command)} exited {proc.returncode}: {text.strip()[-2000:]}")
    return text


async def wait_gone(pid: int, timeout: float) -> bool:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def tail(path: Path, size: int = 2500) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return f"(no log at {path})"


@dataclass
class Stack:
    ports: Ports = field(default_factory=Ports)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    kafka: subprocess.Popen[bytes] | None = None
    redis_proc: subprocess.Popen[bytes] | None = None
    # Processes a case killed or stopped on purpose since the last check.
    expected_exits: set[str] = field(default_factory=set)
    secrets_: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ paths and env

    @property
    def logs(self) -> Path:
        return RUN / "logs"

    @property
    def pgdata(self) -> Path:
        return RUN / "postgres" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        path = RUN / "postgres" / "run"
        return path if len(str(path)) <= 80 else Path(f"/tmp/photogram-faults-pg-{self.ports.pg}")

    @property
    def bootstrap(self) -> str:
        return f"{BROKER_ADDR}:{self.ports.kafka}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/{REDIS_DB}"

    def pg_url(self, database: str, driver: str = "") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.ports.pg}/{database}"

    def service_env(self, port_override: dict[str, int] | None = None) -> dict[str, str]:
        """The distributed mode's environment, every backend variable pointing at this stack."""
        s3 = {k: os.environ[k] for k in os.environ if k.startswith("PHOTOGRAM_S3_")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOGRAM_")}
        env.update(s3)
        # Bytecode cached in a directory of the suite's own (kept across runs): a service
        # (re)started mid-case then takes seconds, not the ten its imports cost uncompiled.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(RUN / "src"), os.environ.get("PYTHONPATH", "")) if p
        )
        env.update(
            {
                "PHOTOGRAM_MODE": "distributed",
                "PHOTOGRAM_BACKENDS_DIR": str(RUN),
                "PHOTOGRAM_JWT_SECRET": self.secrets_["jwt"],
                "PHOTOGRAM_INTERNAL_SECRET": self.secrets_["internal"],
                "PHOTOGRAM_REDIS_URL": self.redis_url,
                "PHOTOGRAM_KAFKA_BOOTSTRAP": self.bootstrap,
                "PHOTOGRAM_KAFKA_PREFIX": KAFKA_PREFIX,
                "PHOTOGRAM_KAFKA_PARTITIONS": str(PARTITIONS),
                "PHOTOGRAM_S3_BUCKET": BUCKET,
                "PHOTOGRAM_RATE_LIMIT_PER_MINUTE": "0",
                # A case restarts a JVM broker or a database on the same two cores, which
                # can hold a service's loop past the lag bound for a moment: the suite
                # counts deliveries, so it takes no 503s for that (tests/unit/test_shedding.py
                # checks the bound).
                "PHOTOGRAM_MAX_LOOP_LAG_MS": "0",
                "PHOTOGRAM_MEDIA_IMAGE_WORKERS": "1",
            }
        )
        for key, db in DATABASES.items():
            env[f"PHOTOGRAM_{key.upper()}_DATABASE_URL"] = self.pg_url(db, "asyncpg")
        for name, (_, prefix, _) in SERVICES.items():
            port = self.ports.of(name)
            env[f"{prefix}_PORT"] = str(port)
            if name != "gateway":
                env[f"PHOTOGRAM_{name.upper().replace('-', '_')}_URL"] = f"http://127.0.0.1:{port}"
        for key, value in (port_override or {}).items():
            env[key] = str(value)
        return env

    # ------------------------------------------------------------------ preflight

    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise StackError(
                "the fault suite needs root (network namespaces, PostgreSQL as postgres)"
            )
        for tool in ("ip", "redis-server", "java", "runuser"):
            if shutil.which(tool) is None:
                raise StackError(f"{tool} not found (.ci/run installs what the suite needs)")
        if not any(shutil.which(t) for t in ("iptables-legacy", "iptables")) and not shutil.which(
            "tc"
        ):
            raise StackError("neither tc nor iptables found: no way to impair the broker's link")
        missing = [
            k
            for k in (
                "PHOTOGRAM_S3_ENDPOINT_URL",
                "PHOTOGRAM_S3_ACCESS_KEY",
                "PHOTOGRAM_S3_SECRET_KEY",
            )
            if not os.environ.get(k)
        ]
        if missing:
            raise StackError(f'{", ".join(missing)} unset: eval "$(bash scripts/backends.sh env)"')
        if not (self.pg_bin() / "pg_ctl").exists():
            raise StackError(f"pg_ctl not found in {self.pg_bin()}")
        self.kafka_libs()

    async def check_ports(self) -> None:
        deadline = time.monotonic() + 10  # a process killed just now may still hold one
        while busy := [p for p in self._local_ports() if port_busy(p)]:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        if busy:
            raise StackError(f"ports in use by other processes: {busy} (see: ss -ltnp)")

    def _local_ports(self) -> list[int]:
        p = self.ports
        return [p.gateway, p.users, p.posts, p.media, p.feed, p.fanout, p.fanout2, p.pg, p.redis]

    @staticmethod
    def pg_bin() -> Path:
        if os.environ.get("PHOTOGRAM_PG_BIN"):
            return Path(os.environ["PHOTOGRAM_PG_BIN"])
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[4]))
        return Path("/usr/lib/postgresql/15/bin") if not found else Path(found[-1])

    @staticmethod
    def kafka_libs() -> Path:
        cache = Path(
            os.environ.get(
                "PHOTOGRAM_BACKENDS_CACHE", Path.home() / ".cache" / "photogram-backends"
            )
        )
        for version in ("4.1.0", "4.1.2"):
            libs = cache / f"kafka-{version}" / "libs"
            if (libs / ".complete").exists():
                return libs
        raise StackError(f"no Kafka jars in {cache}: run `bash scripts/backends.sh start` once")

    # ------------------------------------------------------------------ whole stack

    async def start(self) -> None:
        self.preflight()
        await self.clean_leftovers()
        await self.check_ports()
        if RUN.exists():
            shutil.rmtree(RUN)
        self.logs.mkdir(parents=True)
        (RUN / "services").mkdir()
        self.secrets_ = {"jwt": secrets.token_urlsafe(48), "internal": secrets.token_urlsafe(48)}
        for project, package in SOURCES.items():
            shutil.copytree(
                REPO / project / package,
                RUN / "src" / package,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        began = time.monotonic()

        def step(what: str) -> None:
            print(f"[faults]     {what} ({time.monotonic() - began:.1f} s)", flush=True)

        await self.make_netns()
        await asyncio.gather(self.launch_kafka(), self.init_postgres(), self.start_redis())
        step("PostgreSQL and Redis up, broker launched")

        async def broker() -> None:
            await self.wait_kafka(120)
            step(f"broker answering on {self.bootstrap} (netns {NETNS})")

        async def databases() -> None:
            await self.migrate()  # needs PostgreSQL only: while the broker boots
            step("databases migrated")

        await asyncio.gather(broker(), databases())
        for name in SERVICES:
            self.start_service(name)
        await asyncio.gather(*(self.wait_service(name, 90) for name in SERVICES))
        step("services ready")

    async def stop(self) -> None:
        """Everything the suite started, stopped by the ids it recorded; the netns removed."""
        from netem import clear_impairment

        with contextlib.suppress(Exception):
            await clear_impairment()
        await asyncio.gather(*(self.stop_service(name) for name in list(self.processes)))
        if self.kafka is not None and alive(self.kafka.pid):
            with contextlib.suppress(OSError):
                os.kill(self.kafka.pid, signal.SIGCONT)
                os.kill(self.kafka.pid, signal.SIGTERM)
            if not await wait_gone(self.kafka.pid, 20):
                with contextlib.suppress(OSError):
                    os.kill(self.kafka.pid, signal.SIGKILL)
        await self.stop_redis()
        if (self.pgdata / "postmaster.pid").exists():
            await run(
                *self._as_pg(
                    "pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "-s", "stop"
                ),
                check=False,
            )
        await self.remove_netns()
        strays = self.kill_strays()
        if strays:
            print(f"[faults]     killed {len(strays)} leftover processes: {strays}", flush=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drop_bucket(), 60)

    async def drop_bucket(self) -> None:
        """The suite's objects in the shared object store go with it (a thousand a request)."""
        import aioboto3
        from botocore.config import Config

        session = aioboto3.Session(
            aws_access_key_id=os.environ["PHOTOGRAM_S3_ACCESS_KEY"],
            aws_secret_access_key=os.environ["PHOTOGRAM_S3_SECRET_KEY"],
            region_name=os.environ.get("PHOTOGRAM_S3_REGION", "us-east-1"),
        )
        config = Config(s3={"addressing_style": "path"})
        endpoint = os.environ["PHOTOGRAM_S3_ENDPOINT_URL"]
        async with session.client("s3", endpoint_url=endpoint, config=config) as s3:
            paginator = s3.get_paginator("list_objects_v2")
            try:
                async for page in paginator.paginate(Bucket=BUCKET):
                    keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                    if keys:
                        await s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
                await s3.delete_bucket(Bucket=BUCKET)
            except s3.exceptions.NoSuchBucket:
                return

    async def clean_leftovers(self) -> None:
        """Processes and the namespace an interrupted earlier run of this suite left behind."""
        if (self.pgdata / "postmaster.pid").exists():
            await run(
                *self._as_pg("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-s", "stop"),
                check=False,
            )
        for pid in self.kill_strays():
            await wait_gone(pid, 10)
        await self.remove_netns()

    def kill_strays(self) -> list[int]:
        """SIGKILL every process this suite started that is still there: each carries the
        suite's run directory in its environment (services and what they spawned, such as
        the image pool's workers) or command line (the broker, Redis, the packet handler)."""
        killed = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            pid = int(entry.name)
            with contextlib.suppress(OSError):
                if self._ours(pid) and alive(pid):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        return killed

    def _ours(self, pid: int) -> bool:
        """Whether a pid from one of our pid files is still one of our processes."""
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        run_dir = str(RUN).encode()
        return (
            run_dir in cmdline
            or b"PHOTOGRAM_BACKENDS_DIR=" + run_dir + b"\0" in environ
            or str(Path(__file__).with_name("nfqueue.py")).encode() in cmdline
            or (b"redis-server" in cmdline and f"127.0.0.1:{self.ports.redis}".encode() in cmdline)
        )

    # ------------------------------------------------------------------ network namespace

    async def make_netns(self) -> None:
        try:
            await run("ip", "netns", "add", NETNS)
            await run("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
            await run("ip", "link", "set", VETH_NS, "netns", NETNS)
            await run("ip", "addr", "add", f"{HOST_ADDR}/30", "dev", VETH_HOST)
            await run("ip", "link", "set", VETH_HOST, "up")
            ns = ("ip", "netns", "exec", NETNS)
            await run(*ns, "ip", "addr", "add", f"{BROKER_ADDR}/30", "dev", VETH_NS)
            await run(*ns, "ip", "link", "set", VETH_NS, "up")
            await run(*ns, "ip", "link", "set", "lo", "up")
        except StackError as exc:
            raise StackError(f"cannot make the network namespace: {exc}") from exc

    async def remove_netns(self) -> None:
        await run("ip", "link", "del", VETH_HOST, check=False)
        await run("ip", "netns", "del", NETNS, check=False)

    # ------------------------------------------------------------------ Kafka

    def _kafka_java(self) -> list[str]:
        heap = os.environ.get("PHOTOGRAM_FAULTS_KAFKA_HEAP", "-Xms256m -Xmx512m").split()
        return [
            "java",
            *heap,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            # The client compiler only: the broker starts (and restarts) on less CPU.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={SUPPORT / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            f"{self.kafka_libs()}/*",
        ]

    @property
    def kafka_props(self) -> Path:
        return RUN / "kafka" / "server.properties"

    async def format_kafka_storage(self) -> None:
        data = RUN / "kafka" / "data"
        data.mkdir(parents=True)
        template = (SUPPORT / "kafka-server.properties").read_text()
        props = (
            template.replace("PLAINTEXT://127.0.0.1:@BROKER_PORT@", f"PLAINTEXT://{self.bootstrap}")
            .replace("@BROKER_PORT@", str(self.ports.kafka))
            .replace("@CONTROLLER_PORT@", str(self.ports.controller))
            .replace("@LOG_DIRS@", str(data))
        )
        self.kafka_props.write_text(props)
        cluster = "A" + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")[1:]
        out = await run(
            *self._kafka_java(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster,
            "-c",
            str(self.kafka_props),
            "--standalone",
            timeout=120,
        )
        (self.logs / "kafka-format.log").write_text(out)

    async def launch_kafka(self) -> None:
        await self.format_kafka_storage()
        self.start_kafka()

    def start_kafka(self) -> None:
        """The broker in the namespace (`ip netns exec` execs java: the pid is the broker's)."""
        with (self.logs / "kafka.log").open("ab") as log:
            log.write(f"---- start {time.ctime()} ----\n".encode())
            self.kafka = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    NETNS,
                    *self._kafka_java(),
                    "kafka.Kafka",
                    str(self.kafka_props),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (RUN / "kafka.pid").write_text(str(self.kafka.pid))

    async def kafka_answers(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=3000, client_id="faults-probe"
        )
        try:
            await asyncio.wait_for(admin.start(), 5)
            await asyncio.wait_for(admin.list_topics(), 5)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 5)
            return bool(cluster.get("brokers"))
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def wait_kafka(self, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kafka is None or self.kafka.poll() is not None:
                raise StackError(f"the broker exited:\n{tail(self.logs / 'kafka.log')}")
            if await self.kafka_answers():
                return
            await asyncio.sleep(0.5)
        raise StackError(f"the broker did not answer within {timeout:.0f} s")

    async def restart_kafka(self) -> None:
        if self.kafka is not None and self.kafka.poll() is None:
            return
        self.start_kafka()
        await self.wait_kafka(120)

    async def topic_records(self, topic: str) -> int:
        """How many records the topic holds (the sum of its partitions' end offsets)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        await consumer.start()
        try:
            name = KAFKA_PREFIX + topic
            partitions = [TopicPartition(name, p) for p in range(PARTITIONS)]
            ends = await asyncio.wait_for(consumer.end_offsets(partitions), 10)
            return int(sum(ends.values()))
        finally:
            await consumer.stop()

    # ------------------------------------------------------------------ PostgreSQL

    def _as_pg(self, tool: str, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", str(self.pg_bin() / tool), *args]

    async def init_postgres(self) -> None:
        base = RUN / "postgres"
        base.mkdir(parents=True, exist_ok=True)
        self.pg_socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = base / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        for path in (base, self.pg_socket_dir, pwfile):
            shutil.chown(path, "postgres", "postgres")
        base.chmod(0o700)
        # The postgres user must be able to reach the run directory.
        for parent in [RUN, *RUN.parents]:
            if parent == Path("/"):
                break
            if not os.stat(parent).st_mode & 0o001:
                raise StackError(f"the postgres user cannot reach {RUN} (through {parent})")
        await run(
            *self._as_pg(
                "initdb",
                "-D",
                str(self.pgdata),
                "--encoding=UTF8",
                "--no-locale",
                f"--username={PG_USER}",
                f"--pwfile={pwfile}",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
            ),
            timeout=120,
        )
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# the fault suite's own throwaway cluster\n"
                f"listen_addresses = '127.0.0.1'\nport = {self.ports.pg}\n"
                f"unix_socket_directories = '{self.pg_socket_dir}'\nmax_connections = 200\n"
                # Commits are durable across a PostgreSQL crash (postgres-restart is one), as in
                # production; fsync stays off, since the machine itself does not go down.
                "fsync = off\nsynchronous_commit = on\nfull_page_writes = off\n"
            )
        log = self.logs / "postgres.log"
        log.touch()
        shutil.chown(log, "postgres", "postgres")
        await self.start_postgres()
        import asyncpg

        conn = await asyncpg.connect(self.pg_url("postgres"))
        try:
            for name in DATABASES.values():
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def start_postgres(self) -> None:
        await run(
            *self._as_pg(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.logs / "postgres.log"),
                "-w",
                "-t",
                "60",
                "-s",
                "start",
            ),
            timeout=90,
        )
        await self.wait_postgres(60)

    async def restart_postgres(self) -> None:
        """An immediate restart: every connection cut, crash recovery on the way up."""
        await run(
            *self._as_pg(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.logs / "postgres.log"),
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "-s",
                "restart",
            ),
            timeout=90,
        )
        await self.wait_postgres(60)

    async def postgres_answers(self) -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(self.pg_url("postgres"), timeout=3)
        except Exception:
            return False
        try:
            return bool(await conn.fetchval("SELECT 1") == 1)
        finally:
            await conn.close()

    async def wait_postgres(self, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.postgres_answers():
                return
            await asyncio.sleep(0.2)
        raise StackError(f"PostgreSQL not answering:\n{tail(self.logs / 'postgres.log')}")

    async def ensure_postgres(self) -> None:
        if not await self.postgres_answers():
            await run(
                *self._as_pg(
                    "pg_ctl",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.logs / "postgres.log"),
                    "-w",
                    "-s",
                    "start",
                ),
                timeout=90,
                check=False,
            )
            await self.wait_postgres(60)

    # ------------------------------------------------------------------ Redis

    async def start_redis(self) -> None:
        (RUN / "redis").mkdir(exist_ok=True)
        # As scripts/backends.sh runs it: no persistence, listpack timelines.
        self.redis_proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.ports.redis),
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(RUN / "redis"),
                "--logfile",
                str(self.logs / "redis.log"),
                "--zset-max-listpack-entries",
                "1024",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        (RUN / "redis.pid").write_text(str(self.redis_proc.pid))
        deadline = time.monotonic() + 30
        while not await self.redis_answers():
            if time.monotonic() > deadline or self.redis_proc.poll() is not None:
                raise StackError(f"redis did not start:\n{tail(self.logs / 'redis.log')}")
            await asyncio.sleep(0.1)

    def redis(self, db: int = REDIS_DB) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis(
            host="127.0.0.1",
            port=self.ports.redis,
            db=db,
            socket_timeout=3,
            socket_connect_timeout=3,
        )

    async def redis_answers(self) -> bool:
        client = self.redis()
        try:
            return bool(await client.ping())
        except Exception:
            return False
        finally:
            await client.aclose()

    async def stop_redis(self) -> None:
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()  # no persistence: it exits with nothing saved
            if not await wait_gone(self.redis_proc.pid, 15):
                self.redis_proc.kill()
            self.redis_proc.wait()

    async def ensure_redis(self) -> None:
        if self.redis_proc is None or self.redis_proc.poll() is not None:
            await self.start_redis()

    # ------------------------------------------------------------------ services

    async def migrate(self) -> None:
        env = self.service_env()

        async def one(module: str) -> None:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                "migrate",
                env=env,
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            if proc.returncode != 0:
                raise StackError(f"{module} migrate failed:\n{out.decode()[-2000:]}")

        first, *others = [m for m, _, migrated in SERVICES.values() if migrated]
        await one(first)  # compiles what they share once, then the others in parallel
        await asyncio.gather(*(one(m) for m in others))

    def start_service(self, name: str) -> None:
        if name == SECOND_WORKER:
            module = "fanout_worker"
            env = self.service_env({"PHOTOGRAM_FANOUT_PORT": self.ports.fanout2})
        else:
            module = SERVICES[name][0]
            env = self.service_env()
        log = RUN / "services" / f"{name}.log"
        with log.open("ab") as out:
            out.write(f"---- start {time.ctime()} ----\n".encode())
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (RUN / "services" / f"{name}.pid").write_text(str(self.processes[name].pid))

    async def service_ready(self, name: str) -> bool:
        url = f"http://127.0.0.1:{self.ports.of(name)}/readyz"
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_service(self, name: str, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        log = RUN / "services" / f"{name}.log"
        while time.monotonic() < deadline:
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                raise StackError(f"{name} exited:\n{tail(log)}")
            if await self.service_ready(name):
                return
            await asyncio.sleep(0.25)
        raise StackError(f"{name} not ready within {timeout:.0f} s:\n{tail(log)}")

    def kill_service(self, name: str) -> int:
        proc = self.processes[name]
        self.expected_exits.add(name)
        proc.kill()
        return proc.pid

    async def stop_service(self, name: str, *, graceful: bool = True) -> None:
        proc = self.processes.get(name)
        if proc is None:
            return
        self.expected_exits.add(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            if not await wait_gone(proc.pid, 30):
                proc.kill()
        proc.wait()
        del self.processes[name]
        (RUN / "services" / f"{name}.pid").unlink(missing_ok=True)

    async def restart_service(self, name: str, timeout: float = 60) -> None:  # noqa: ASYNC109
        proc = self.processes.get(name)
        if proc is not None and proc.poll() is None:
            return
        self.start_service(name)
        await self.wait_service(name, timeout)
        self.expected_exits.discard(name)

    def unexpected_exits(self) -> list[str]:
        """Services that died without a case meaning them to (a crash is a finding)."""
        return sorted(
            name
            for name, proc in self.processes.items()
            if proc.poll() is not None and name not in self.expected_exits
        )

    # ------------------------------------------------------------------ after each case

    async def restore(self) -> list[str]:
        """Bring every backend and service back as the cases expect them; say what it did."""
        done: list[str] = []
        from netem import clear_impairment

        if await clear_impairment():
            done.append("impairment cleared")
        if self.kafka is not None and self.kafka.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.kafka.pid, signal.SIGCONT)
        if self.kafka is None or self.kafka.poll() is not None:
            await self.restart_kafka()
            done.append("broker started")
        if not await self.postgres_answers():
            await self.ensure_postgres()
            done.append("postgres started")
        if self.redis_proc is None or self.redis_proc.poll() is not None:
            await self.ensure_redis()
            done.append("redis started")
        if SECOND_WORKER in self.processes:
            await self.stop_service(SECOND_WORKER)
            done.append("second worker stopped")
        for name in SERVICES:
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                self.processes.pop(name, None)
                self.start_service(name)
                done.append(f"{name} started")
        await asyncio.gather(*(self.wait_service(name, 60) for name in SERVICES))
        self.expected_exits.clear()
        return done
