"""
The benchmark's worker: a minimal HTTP/1.1 server on asyncio, fast enough
not to be the bottleneck (see ``python -m bench --calibrate``).

Every POST is answered ``{"status":"success"}`` at once; the job id
(``X-Fireworq-Job-Id``) and the time of receipt are recorded.  ``GET /stats``
answers the counts, ``GET /ids`` every id received (repeats included) with
its receipt time, ``POST /reset`` forgets them.

Run: ``python -m bench.worker PORT`` (prints ``ready`` when listening).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import List, Tuple

RESPONSE_BODY = b'{"status":"success"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(RESPONSE_BODY)).encode()
    + b"\r\n\r\n"
    + RESPONSE_BODY
)


class Records:
    """What the worker received."""

    def __init__(self) -> None:
        self.deliveries: List[Tuple[int, float]] = []

    def stats(self) -> dict:
        ids = [job_id for job_id, _ in self.deliveries]
        return {
            "received": len(ids),
            "unique": len(set(ids)),
            "first": self.deliveries[0][1] if self.deliveries else None,
            "last": self.deliveries[-1][1] if self.deliveries else None,
        }


class WorkerProtocol(asyncio.Protocol):
    """Parses requests on one keep-alive connection and answers them."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.buffer = b""
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            job_id = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-fireworq-job-id":
                    job_id = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.handle(head.split(b" ", 2), job_id)
            if close:
                self.transport.close()
                return

    def handle(self, request_line: List[bytes], job_id: int) -> None:
        method, path = request_line[0], request_line[1]
        if method == b"POST" and path != b"/reset":
            self.records.deliveries.append((job_id, time.time()))
            self.transport.write(RESPONSE)
            return
        if path == b"/stats":
            body = json.dumps(self.records.stats()).encode()
        elif path == b"/ids":
            body = json.dumps(self.records.deliveries).encode()
        elif path == b"/reset":
            self.records.deliveries = []
            body = b"{}"
        else:
            body = b"{}"
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port`` until killed."""
    records = Records()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: WorkerProtocol(records), "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Entry point: ``python -m bench.worker PORT``."""
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
