"""Latency and loss on the veth pair between the services and the broker's namespace.

`tc qdisc add dev <veth> root netem delay D loss L` on both ends of the pair when the kernel
has the netem qdisc. Where it does not (CONFIG_NET_SCH_NETEM unset, as on the CI machines'
kernel), the same impairment in user space: iptables rules in the broker's namespace send
every packet crossing its veth end to an NFQUEUE queue, and `nfqueue.py` holds each one
D ms, dropping L % of them (`--queue-bypass`: if the handler dies, packets flow again).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from pathlib import Path

from stack import NETNS, RUN, VETH_HOST, VETH_NS, StackError, run

QUEUE = 7
NS = ("ip", "netns", "exec", NETNS)
_state: dict[str, object] = {}


def _iptables() -> str:
    for tool in ("iptables-legacy", "iptables"):
        if shutil.which(tool):
            return tool
    raise StackError("no iptables to send the broker's packets to the delaying queue")


def _rules(action: str) -> list[list[str]]:
    tool = _iptables()
    target = ["-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]
    return [
        [*NS, tool, action, "INPUT", "-i", VETH_NS, *target],
        [*NS, tool, action, "OUTPUT", "-o", VETH_NS, *target],
    ]


async def impair(delay_ms: int, loss_percent: float) -> str:
    """Delay and lose packets both ways between the services and the broker; say how."""
    spec = ["netem", "delay", f"{delay_ms}ms", "loss", f"{loss_percent}%"]
    try:
        await run("tc", "qdisc", "add", "dev", VETH_HOST, "root", *spec)
    except StackError as exc:
        if "unknown" not in str(exc).lower() and "no such file" not in str(exc).lower():
            raise
    else:
        _state["netem"] = True
        await run(*NS, "tc", "qdisc", "add", "dev", VETH_NS, "root", *spec)
        return f"tc netem delay {delay_ms}ms loss {loss_percent}% on both veth ends"
    log = (RUN / "logs" / "nfqueue.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        *NS,
        sys.executable,
        str(Path(__file__).with_name("nfqueue.py")),
        str(QUEUE),
        str(delay_ms),
        str(loss_percent),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    _state["handler"] = proc
    (RUN / "nfqueue.pid").write_text(str(proc.pid))
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    if line.strip() != b"ready":
        raise StackError("the NFQUEUE handler did not bind its queue (see logs/nfqueue.log)")
    for rule in _rules("-I"):
        await run(*rule)
    _state["rules"] = True
    return (
        f"no netem qdisc in this kernel: NFQUEUE delay {delay_ms}ms loss {loss_percent}% each way"
    )


async def clear_impairment() -> bool:
    """Remove whatever impair() set up; True if there was something."""
    found = False
    if _state.pop("netem", None):
        found = True
        await run("tc", "qdisc", "del", "dev", VETH_HOST, "root", check=False)
        await run(*NS, "tc", "qdisc", "del", "dev", VETH_NS, "root", check=False)
    if _state.pop("rules", None):
        found = True
        for rule in _rules("-D"):
            await run(*rule, check=False)
    proc = _state.pop("handler", None)
    if isinstance(proc, asyncio.subprocess.Process):
        found = True
        await asyncio.sleep(0.5)  # what it holds is released on its own first
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return found
