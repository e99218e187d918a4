"""Delay and loss for the packets of one NFQUEUE queue: `netem delay D loss L` in user space.

    python nfqueue.py QUEUE DELAY_MS LOSS_PERCENT

Run inside the network namespace whose iptables rules send packets to QUEUE. Every packet
is held DELAY_MS (in arrival order, so nothing is reordered) and then accepted, or
dropped with probability LOSS_PERCENT / 100. The suite uses it where the kernel has no
netem qdisc (CONFIG_NET_SCH_NETEM unset), speaking nfnetlink_queue's protocol directly.
Prints "ready" once bound; stops on SIGTERM.
"""

from __future__ import annotations

import errno
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN = 1, 2, 3
CMD_BIND = 1
COPY_PACKET = 2
ATTR_PACKET_HDR, ATTR_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1


def attribute(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


class Queue:
    def __init__(self, number: int) -> None:
        self.number = number
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, 0))

    def send(self, msg: int, attrs: list[bytes], flags: int = NLM_F_REQUEST) -> None:
        self.seq += 1
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(self.number)) + b"".join(attrs)
        kind = (NFNL_SUBSYS_QUEUE << 8) | msg
        self.sock.send(struct.pack("=IHHII", 16 + len(body), kind, flags, self.seq, 0) + body)

    def bind(self) -> None:
        ack = NLM_F_REQUEST | NLM_F_ACK
        self.send(MSG_CONFIG, [attribute(CFG_CMD, struct.pack("=BBH", CMD_BIND, 0, 0))], ack)
        params = struct.pack(">IB", 64, COPY_PACKET) + b"\0\0\0"  # the headers are enough
        self.send(MSG_CONFIG, [attribute(CFG_PARAMS, params)], ack)
        self.send(MSG_CONFIG, [attribute(CFG_QUEUE_MAXLEN, struct.pack(">I", 65536))], ack)

    def verdict(self, packet_id: int, verdict: int) -> None:
        self.send(
            MSG_VERDICT, [attribute(ATTR_VERDICT_HDR, struct.pack(">II", verdict, packet_id))]
        )

    def packet_ids(self, data: bytes) -> list[int]:
        found = []
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
            if length < 16:
                break
            if kind == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", data, offset + 16)
                if error:
                    print(f"netlink error {error}", file=sys.stderr, flush=True)
            elif kind == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
                at = offset + 20  # past nlmsghdr and nfgenmsg
                while at + 4 <= offset + length:
                    size, attr_kind = struct.unpack_from("=HH", data, at)
                    if size < 4:
                        break
                    if attr_kind & 0x7FFF == ATTR_PACKET_HDR:
                        found.append(struct.unpack_from(">I", data, at + 4)[0])
                    at += (size + 3) & ~3
            offset += (length + 3) & ~3
        return found


def main() -> None:
    number, delay, loss = int(sys.argv[1]), float(sys.argv[2]) / 1000, float(sys.argv[3]) / 100
    queue = Queue(number)
    queue.bind()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    held: list[tuple[float, int, int]] = []  # (due, packet id, verdict)
    rng = random.Random()
    while not stopping or held:
        now = time.monotonic()
        while held and (held[0][0] <= now or stopping):
            _, packet_id, verdict = heapq.heappop(held)
            queue.verdict(packet_id, verdict)
        if stopping:
            continue
        timeout = max(0.0, held[0][0] - now) if held else 0.5
        try:
            ready, _, _ = select.select([queue.sock], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = queue.sock.recv(1 << 20)
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # the kernel dropped some: those are lost packets
                continue
            raise
        arrived = time.monotonic()
        for packet_id in queue.packet_ids(data):
            verdict = NF_DROP if rng.random() < loss else NF_ACCEPT
            heapq.heappush(held, (arrived + delay, packet_id, verdict))


if __name__ == "__main__":
    main()
