#!/usr/bin/env python3
"""A small HTTP forward proxy for the proxy integration test (standard library only, one thread per
client connection).

  forward_proxy.py --log FILE (--port N | --port-file FILE) [--listen ADDR] [--map NAME=ADDR]...
                   [--user USER:PASSWORD]

- Absolute-URI requests ("GET http://host:port/path HTTP/1.1", any method) are forwarded on a new
  upstream connection each; request and response bodies (Content-Length or chunked) are streamed in
  64 KiB pieces, never held whole. Client connections are kept alive (HTTP/1.1) unless the client
  or a close-delimited upstream response says otherwise.
- CONNECT host:port opens a byte tunnel (TLS stays end to end between client and server).
- --map NAME=ADDR: connect to ADDR when a request names host NAME (the name resolves nowhere else).
- --user USER:PASSWORD: requests without that Proxy-Authorization (Basic) get 407.
- --log FILE: one line per request or tunnel, "METHOD TARGET STATUS" (STATUS: what the proxy
  answered; 200 for an established tunnel, 407/502 from the proxy itself).
- --port 0 with --port-file FILE: listen on a free port and write it to FILE once listening.
"""
import argparse
import http.client
import http.server
import os
import socket
import sys
import threading
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ next to the script
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httprelay import (HOP_BY_HOP, PIECE, RelayMixin, ThreadingServer, add_server_arguments,
                       basic_credentials, connection_tokens, parse_arguments, serve)


class Failure(Exception):
    """An error answered to the client with STATUS (the connection is closed afterwards)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def split_host_port(authority, default_port):
    host, port = authority, default_port
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise Failure(400, f"bad authority {authority!r}")
        host, rest = authority[1:end], authority[end + 1:]
        if rest.startswith(":"):
            port = rest[1:]
    elif ":" in authority:
        host, port = authority.rsplit(":", 1)
    try:
        port = int(port)
    except ValueError:
        raise Failure(400, f"bad port in {authority!r}") from None
    if not host or not 0 < port < 65536:
        raise Failure(400, f"bad authority {authority!r}")
    return host, port


class Handler(RelayMixin, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "forward_proxy"

    # ------------------------------------------------------------------ plumbing

    def _upstream(self, host, port):
        address = self.server.host_map.get(host.lower(), host)
        try:
            return socket.create_connection((address, port), timeout=10)
        except OSError as e:
            raise Failure(502, f"cannot connect to {host}:{port}: {e}") from None

    def _open(self, authority, default_port):
        """The upstream socket (blocking) for AUTHORITY, or None once the error is answered."""
        try:
            host, port = split_host_port(authority, default_port)
            upstream = self._upstream(host, port)
        except Failure as e:
            self._answer_error(e.status, str(e))
            return None
        upstream.settimeout(None)
        return upstream

    def _answer_error(self, status, message, extra=()):
        """A small complete answer from the proxy itself; the client connection is closed after it."""
        self.close_connection = True
        try:
            self._send_small(status, (message + "\n").encode(), extra)
        except OSError:
            pass
        self._log(status)

    def _authorized(self):
        expected = self.server.credentials
        if expected is None:
            return True
        return basic_credentials(self.headers.get("Proxy-Authorization")) == expected

    def _check_auth(self):
        if self._authorized():
            return True
        self._answer_error(407, "proxy authentication required",
                           [("Proxy-Authenticate", 'Basic realm="forward_proxy"')])
        return False

    # ------------------------------------------------------------------ CONNECT tunnels

    def _connect(self):
        self.close_connection = True  # the connection becomes the tunnel; nothing follows it
        if not self._check_auth():
            return
        upstream = self._open(self.path, 443)
        if upstream is None:
            return
        with upstream:
            self.send_response_only(200, "Connection established")
            self.end_headers()
            self._log(200)
            # client -> server in a second thread (rfile may already hold bytes the client sent
            # early), server -> client here. Each direction ends with a half-close of the other side.
            t = threading.Thread(target=self._pump_client_to, args=(upstream,), daemon=True)
            t.start()
            try:
                while data := upstream.recv(PIECE):
                    self.connection.sendall(data)
            except OSError:
                pass
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            t.join()

    def _pump_client_to(self, upstream):
        try:
            while data := self.rfile.read1(PIECE):
                upstream.sendall(data)
        except (OSError, ValueError):
            pass
        try:
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # ------------------------------------------------------------------ absolute-URI requests

    def _forward(self):
        if not self._check_auth():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.scheme.lower() != "http" or not url.netloc:
            self._answer_error(400, f"not a proxy request for an http:// URL: {self.path}")
            return
        upstream = self._open(url.netloc.rpartition("@")[2], 80)
        if upstream is None:
            return
        with upstream:
            self._relay(upstream, url)

    def _relay(self, upstream, url):
        path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
        listed = connection_tokens(self.headers.get("Connection"))
        try:
            chunked_in, length_in = self._request_framing()
        except ValueError:
            self._answer_error(400, "bad Content-Length")
            return
        head = [f"{self.command} {path} HTTP/1.1"]
        has_host = False
        for name, value in self.headers.items():
            low = name.lower()
            if low in HOP_BY_HOP or low in listed or low in ("content-length", "expect"):
                continue
            has_host = has_host or low == "host"
            head.append(f"{name}: {value}")
        if not has_host:
            head.append(f"Host: {url.netloc}")
        if chunked_in:
            head.append("Transfer-Encoding: chunked")
        elif length_in is not None:
            head.append(f"Content-Length: {length_in}")
        head.append("Connection: close")
        try:
            upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if chunked_in:
                self._copy_chunked_request(upstream.sendall)
            elif length_in is not None:
                self._copy_exactly(length_in, upstream.sendall)
        except (OSError, ValueError) as e:
            # The body may be half read: the client connection cannot carry another request.
            self._answer_error(502, f"sending the request upstream: {e}")
            return

        response = http.client.HTTPResponse(upstream, method=self.command)
        try:
            response.begin()
        except (OSError, http.client.HTTPException) as e:
            self._answer_error(502, f"reading the upstream response: {e!r}")
            return
        with response:
            self._send_response(response)

    def _guarded(self, handler):
        try:
            handler()
        except OSError:
            self.close_connection = True  # the client went away (or the socket broke): drop it

    def _do_forward(self):
        self._guarded(self._forward)

    def _do_connect(self):
        self._guarded(self._connect)

    do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = do_OPTIONS = _do_forward
    do_CONNECT = _do_connect


def main():
    p = argparse.ArgumentParser(description="HTTP forward proxy for tests")
    add_server_arguments(p)
    p.add_argument("--map", action="append", default=[], metavar="NAME=ADDR")
    p.add_argument("--user", metavar="USER:PASSWORD")
    a = parse_arguments(p)

    server = ThreadingServer((a.listen, a.port), Handler)
    server.credentials = a.user.encode() if a.user else None
    server.host_map = {}
    for m in a.map:
        name, sep, address = m.partition("=")
        if not sep or not name or not address:
            p.error(f"--map {m!r}: expected NAME=ADDR")
        server.host_map[name.lower()] = address
    serve(server, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
