"""The fault suite (`make test-faults`): real processes, real kills, a stack of its own.

    python tests/faults/run.py [--cases name,name,...]

Starts the suite's own PostgreSQL, Redis and Kafka (the broker in a network namespace) and
the six services in the distributed mode (stack.py), runs each case of cases.py in turn
with a hard timeout, restores whatever the case killed before the next one, stops it all
at the end. Prints one line per case (acknowledged, delivered, lost, duplicated, recovery
time) and "faults: N passed, M failed"; exits 1 if any case failed. A case that cannot run
(a backend that cannot be started again, no network namespace) fails; none is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import httpx  # noqa: E402
from cases import CASES, Case, Context  # noqa: E402
from stack import REPO, RUN, Stack, run  # noqa: E402
from workload import REQUEST_TIMEOUT, Delivery, warm_up, writable  # noqa: E402

from helpers import Api  # noqa: E402

SUITE_DEADLINE = 420.0  # past this no case starts: the rest fail as not run
RESTORE_TIMEOUT = 150.0


@dataclass
class Result:
    name: str
    delivery: Delivery = field(default_factory=Delivery)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        d = self.delivery
        return not self.problems and d.lost == 0 and d.duplicated == 0 and d.recovery is not None

    def line(self) -> str:
        d = self.delivery
        recovery = f"{d.recovery:.1f}s" if d.recovery is not None else "none"
        return (
            f"{self.name:<20} acknowledged={d.acknowledged:<4} delivered={d.delivered:<4} "
            f"lost={d.lost:<3} duplicated={d.duplicated:<3} recovery={recovery:<6} "
            f"{'PASS' if self.passed else 'FAIL'}"
        )


def say(text: str) -> None:
    print(f"[faults] {text}", flush=True)


async def run_case(stack: Stack, api: Api, case: Case, index: int) -> Result:
    result = Result(case.name)
    ctx = Context(stack=stack, api=api, tag=f"c{index:02d}")
    started = time.monotonic()
    try:
        async with asyncio.timeout(case.timeout):
            result.delivery = await case.body(ctx)
        result.problems += result.delivery.problems
    except TimeoutError:
        result.problems.append(f"hard timeout ({case.timeout:.0f} s)")
    except Exception as exc:
        result.problems.append(f"{type(exc).__name__}: {str(exc)[:1500]}")
    finally:
        await ctx.cancel_uploads()
    if result.problems and not result.delivery.acknowledged:
        # Broken off before its check: what was acknowledged counts as not shown delivered.
        acked = sum(len(u.acked) for u in ctx.uploads)
        result.delivery = Delivery(acknowledged=acked, lost=acked)
        if acked:
            ctx.notes.append("delivery not checked: the case broke off")
    died = stack.unexpected_exits()
    if died:
        result.problems.append(f"exited without being killed: {', '.join(died)}")
    try:
        done = await asyncio.wait_for(stack.restore(), RESTORE_TIMEOUT)
        if done:
            ctx.notes.append(f"restored: {', '.join(done)}")
        waited, refused = await writable(api, f"{ctx.tag}probe", time.monotonic() + 30)
        if refused:
            ctx.notes.append(
                f"after the restore the API refused writes for {waited:.1f} s: {dict(refused)}"
            )
    except Exception as exc:
        result.problems.append(f"could not restore the stack: {type(exc).__name__}: {exc}")
    result.notes = ctx.notes
    result.seconds = time.monotonic() - started
    return result


async def suite(names: list[str]) -> int:
    began = time.monotonic()
    # The probes' and the poison producer's clients retry through outages: their logs are noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    selected = [c for c in CASES if not names or c.name in names]
    unknown = set(names) - {c.name for c in CASES}
    if unknown:
        raise SystemExit(f"unknown cases: {sorted(unknown)}; known: {[c.name for c in CASES]}")
    stack = Stack()
    results: list[Result] = []
    try:
        say(f"starting the suite's own PostgreSQL, Redis, Kafka (netns) and services in {RUN}")
        try:
            await asyncio.wait_for(stack.start(), 240)
        except Exception as exc:
            say(f"the stack did not start: {exc}")
            results = [
                Result(c.name, problems=[f"not run: stack did not start ({exc})"]) for c in selected
            ]
        else:
            say(f"stack up in {time.monotonic() - began:.0f} s; gateway {stack.gateway_url}")
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(
                base_url=stack.gateway_url, timeout=REQUEST_TIMEOUT, limits=limits
            ) as client:
                api = Api(client)
                try:
                    tries = await warm_up(api, time.monotonic() + 90)
                    say(f"first upload acknowledged (attempt {tries})")
                except Exception as exc:
                    say(f"the stack takes no upload: {exc}")
                    selected_ = []
                    results = [
                        Result(c.name, problems=[f"not run: no upload acknowledged ({exc})"])
                        for c in selected
                    ]
                else:
                    selected_ = selected
                for index, case in enumerate(selected_, 1):
                    if time.monotonic() - began > SUITE_DEADLINE:
                        results.append(Result(case.name, problems=["not run: suite deadline"]))
                        continue
                    say(f"{case.name} ...")
                    result = await run_case(stack, api, case, index)
                    results.append(result)
                    say(f"{result.line()}  ({result.seconds:.0f} s)")
                    for note in result.notes:
                        say(f"    {note}")
                    for problem in result.problems:
                        say(f"    PROBLEM: {problem}")
    finally:
        say("stopping the suite's stack")
        stopping = time.monotonic()
        try:
            await asyncio.wait_for(stack.stop(), 90)
            say(f"stack stopped in {time.monotonic() - stopping:.0f} s")
        except Exception as exc:
            say(f"stopping the stack failed: {exc}")
    shared = await run("bash", str(REPO / "scripts" / "backends.sh"), "status", check=False)
    say("shared backends after the suite (never touched by it):")
    for line in shared.splitlines():
        say(f"    {line}")
    print()
    for result in results:
        print(result.line())
    passed = sum(r.passed for r in results)
    failed = len(selected) - passed  # a case with no result (the suite broke off) failed
    print(f"wall time {time.monotonic() - began:.0f} s")
    print(f"faults: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


async def main_task(names: list[str]) -> int:
    """The suite, cancelled by SIGTERM/SIGINT so that its stack is stopped all the same."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    signalled: list[int] = []

    def interrupt(sig: int) -> None:
        # Once: a second signal must not cut short the stack's stop that the first began.
        print(f"[faults] signal {sig}{'' if not signalled else ' again (ignored)'}", flush=True)
        if not signalled:
            signalled.append(sig)
            task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, interrupt, sig)
    return await suite(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = parser.parse_args()
    names = [n for n in args.cases.split(",") if n]
    try:
        code = asyncio.run(main_task(names))
    except asyncio.CancelledError:
        print("faults: interrupted; the suite's stack was stopped", flush=True)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
