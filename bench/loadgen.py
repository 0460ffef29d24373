"""
The benchmark's load generator: keep-alive HTTP/1.1 clients on asyncio
that send prepared requests as fast as the server answers.

Run as a separate process (``python -m bench.loadgen``) with a JSON plan on
standard input; it prints one JSON result line.  The plan:

    {"targets": ["127.0.0.1:8080", ...], "path": "/job/bench",
     "bodies": ["{...}", ...] or "body": "{...}", "count": N,
     "concurrency": C, "interval": 0 (seconds between requests of one client)}

The result: elapsed seconds, answers by status code, every 200 answer as
``[id (or list of ids, for batch pushes), sent at, round-trip seconds]``,
and every request's round-trip time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Dict, List, Optional


class Client:
    """One keep-alive connection sending requests one after another."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes) -> tuple:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        code = int(status_line.split(b" ", 2)[1])
        length = 0
        close = chunked = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            content = b"".join(parts)
        else:
            content = await self.reader.readexactly(length) if length else b""
        if close:
            self.writer.close()
            self.writer = None
        return code, content


async def run(plan: dict) -> dict:
    """Send ``plan["count"]`` requests over ``plan["concurrency"]`` connections."""
    targets = plan["targets"]
    count = plan["count"]
    bodies = [b.encode() for b in plan.get("bodies") or [plan["body"]]]
    path = plan["path"]
    interval = plan.get("interval", 0)
    codes: Dict[int, int] = {}
    answers: List[list] = []
    rtts: List[float] = []
    next_index = [0]

    async def client_loop(number: int) -> None:
        host, port = targets[number % len(targets)].rsplit(":", 1)
        client = Client(host, int(port))
        while True:
            index = next_index[0]
            if index >= count:
                return
            next_index[0] += 1
            body = bodies[index % len(bodies)]
            started = time.time()
            try:
                code, content = await client.request("POST", path, body)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                codes[0] = codes.get(0, 0) + 1
                client.writer = None
                continue
            rtt = time.time() - started
            rtts.append(rtt)
            codes[code] = codes.get(code, 0) + 1
            if code == 200:
                answer = json.loads(content)
                job_ids = [j.get("id") for j in answer] if isinstance(answer, list) else answer.get("id")
                answers.append([job_ids, started, rtt])
            if interval:
                await asyncio.sleep(interval)

    begun = time.time()
    await asyncio.gather(*(client_loop(n) for n in range(plan["concurrency"])))
    return {
        "elapsed": time.time() - begun,
        "started": begun,
        "codes": codes,
        "answers": answers,
        "rtts": rtts,
    }


def main() -> None:
    """Entry point: plan on stdin, result on stdout."""
    plan = json.load(sys.stdin)
    print(json.dumps(asyncio.run(run(plan))))


if __name__ == "__main__":
    main()
