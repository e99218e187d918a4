"""Readiness probes for the local backends (used by scripts/backends.sh).

    python probe.py kafka <bootstrap>
    python probe.py s3 <endpoint> <bucket> <access-key> <secret-key> <region>

Each probe makes real client requests and exits 0 when the backend answers,
1 when it does not (yet), with the reason on stderr. The S3 probe also creates
the bucket when it does not exist yet, and exits 3 if the server accepts an
unsigned request (credentials not enforced), which waiting will not fix.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request


class FatalProbeError(Exception):
    """A problem that retrying will not fix."""


async def _kafka(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="photogram-probe"
    )
    try:
        await asyncio.wait_for(admin.start(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
        cluster = await asyncio.wait_for(admin.describe_cluster(), 10)
        if not cluster.get("brokers"):
            raise RuntimeError("no broker in cluster metadata")
    finally:
        await admin.close()


def kafka(bootstrap: str) -> None:
    asyncio.run(_kafka(bootstrap))


def s3(endpoint: str, bucket: str, access_key: str, secret_key: str, region: str) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=3,
            read_timeout=10,
        ),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc2:
            if exc2.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        client.head_bucket(Bucket=bucket)

    # The server must refuse anonymous requests when credentials are configured.
    try:
        with urllib.request.urlopen(f"{endpoint}/{bucket}", timeout=5) as resp:  # noqa: S310
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 403:
        raise FatalProbeError(
            f"unsigned GET {endpoint}/{bucket} answered {status}, not 403: "
            "credentials are not enforced"
        )


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("kafka", "s3"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "kafka":
            kafka(*argv[2:3])
        else:
            s3(*argv[2:7])
    except FatalProbeError as exc:
        print(f"{argv[1]}: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        print(f"{argv[1]} not ready: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
