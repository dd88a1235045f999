"""The cheapest possible upstream: a trivial HTTP/1.1 server answering 200 "ok", for Envoy floor references.

`python bench/_tiny_http.py PORT [MAX_S]` serves on 127.0.0.1:PORT for at most MAX_S seconds (default 300).
"""

from __future__ import annotations

import asyncio
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class _Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # requests without bodies only
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


async def main(port: int, max_s: float) -> None:
    server = await asyncio.get_running_loop().create_server(_Http, "127.0.0.1", port)
    async with server:
        await asyncio.sleep(max_s)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 300.0))
