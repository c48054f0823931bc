#!/usr/bin/env python3
"""A WAN in a box for the benchmark: a TCP relay that delays every chunk by half a round trip in each
direction, and optionally paces the bytes to a bandwidth cap, on loopback (no netem here).

  relay.py --upstream HOST:PORT --rtt MS [--bandwidth MBIT] --port-file FILE [--log FILE]

- Each chunk read from one side is written to the other RTT/2 after it was read, in order: a request
  and its answer cost one RTT more than they do on loopback, and a request's answer can never come
  back before a full RTT has passed.
- A new connection's first bytes from the client wait one more RTT: the TCP handshake that the
  loopback kernel completes at once (a TLS handshake, inside the stream, pays its own RTTs).
- --bandwidth caps each direction of the link as a whole (all connections share it, as they would
  share a real link): chunks leave no faster than the cap.
- TCP keeps its flow control: a side that stops reading is not read for (at most ~4 MiB per
  direction and connection are held in flight).

Faithfulness is checked by bench/relay-check.sh (curl -w timings, one request per round trip).
"""
import argparse
import asyncio
import os
import sys
import time

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--upstream", required=True, help="HOST:PORT the relay forwards to")
p.add_argument("--rtt", type=float, required=True, help="round-trip time to add, in milliseconds")
p.add_argument("--bandwidth", type=float, default=0, help="cap per direction, in Mbit/s (0: none)")
p.add_argument("--port-file", required=True, help="where the listening port is written once ready")
p.add_argument("--listen", default="127.0.0.1")
p.add_argument("--log", help="one line per connection (open, close, bytes each way)")
a = p.parse_args()

HALF = a.rtt / 2000.0
RATE = a.bandwidth * 1e6 / 8 if a.bandwidth > 0 else 0.0  # bytes per second
CHUNK = 64 * 1024
IN_FLIGHT = 4 << 20
up_host, up_port = a.upstream.rsplit(":", 1)
log = open(a.log, "a", buffering=1) if a.log else None


class Link:
    """One direction of the emulated link: when its wire is next free (bandwidth cap)."""

    def __init__(self):
        self.free_at = 0.0

    def departure(self, now, size):
        if not RATE:
            return now
        start = max(now, self.free_at)
        self.free_at = start + size / RATE
        return self.free_at


uplink, downlink = Link(), Link()


async def pump(reader, writer, link, first_delay):
    """Copies reader to writer, each chunk delivered HALF after it was read (and after the link had
    room for it); the first chunk also waits `first_delay`."""
    queue = asyncio.Queue()
    held = 0
    room = asyncio.Event()
    room.set()
    total = 0

    async def deliver():
        nonlocal held
        while True:
            due, data = await queue.get()
            if data is None:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
            held -= len(data)
            if held < IN_FLIGHT:
                room.set()
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.create_task(deliver())
    extra = first_delay
    try:
        while True:
            await room.wait()
            data = await reader.read(CHUNK)
            if not data:
                break
            now = time.monotonic()
            total += len(data)
            held += len(data)
            if held >= IN_FLIGHT:
                room.clear()
            queue.put_nowait((link.departure(now + extra, len(data)) + HALF, data))
            extra = 0.0
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0.0, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass
    return total


async def handle(client_reader, client_writer):
    try:
        up_reader, up_writer = await asyncio.open_connection(up_host, int(up_port))
    except OSError:
        client_writer.close()
        return
    started = time.monotonic()
    sent, received = await asyncio.gather(pump(client_reader, up_writer, uplink, 2 * HALF),
                                          pump(up_reader, client_writer, downlink, 0.0))
    for w in (up_writer, client_writer):
        try:
            w.close()
        except OSError:
            pass
    if log:
        log.write("connection %.3fs up=%d down=%d\n" % (time.monotonic() - started, sent, received))


async def main():
    server = await asyncio.start_server(handle, a.listen, 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(a.port_file + ".tmp", a.port_file)
    async with server:
        await server.serve_forever()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    sys.exit(0)
