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
import base64
import binascii
import http.client
import http.server
import os
import socket
import sys
import threading
import urllib.parse

PIECE = 64 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) are never forwarded; framing headers are set by us.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "transfer-encoding", "upgrade"}


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


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "forward_proxy"

    # ------------------------------------------------------------------ plumbing

    def log_message(self, *args):
        pass  # our own log (one line per request) is written by _log

    def _log(self, status):
        target = getattr(self, "_target", self.path)
        with self.server.log_lock, open(self.server.log_path, "a", encoding="utf-8") as f:
            f.write(f"{self.command} {target} {status}\n")

    def _upstream(self, host, port):
        address = self.server.host_map.get(host.lower(), host)
        try:
            return socket.create_connection((address, port), timeout=10)
        except OSError as e:
            raise Failure(502, f"cannot connect to {host}:{port}: {e}") from None

    def _answer_error(self, status, message, extra=()):
        """A small complete answer from the proxy itself; the client connection is closed after it."""
        body = (message + "\n").encode()
        self.close_connection = True
        try:
            self.send_response_only(status)
            for name, value in extra:
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass
        self._log(status)

    def _authorized(self):
        expected = self.server.credentials
        if expected is None:
            return True
        scheme, _, value = self.headers.get("Proxy-Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            return base64.b64decode(value.strip(), validate=True) == expected
        except (binascii.Error, ValueError):
            return False

    def _check_auth(self):
        if self._authorized():
            return True
        self._answer_error(407, "proxy authentication required",
                           [("Proxy-Authenticate", 'Basic realm="forward_proxy"')])
        return False

    # ------------------------------------------------------------------ CONNECT tunnels

    def _connect(self):
        self._target = self.path
        self.close_connection = True  # the connection becomes the tunnel; nothing follows it
        if not self._check_auth():
            return
        try:
            host, port = split_host_port(self.path, 443)
            upstream = self._upstream(host, port)
        except Failure as e:
            self._answer_error(e.status, str(e))
            return
        with upstream:
            upstream.settimeout(None)
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
        self._target = self.path
        if not self._check_auth():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.scheme.lower() != "http" or not url.netloc:
            self._answer_error(400, f"not a proxy request for an http:// URL: {self.path}")
            return
        try:
            host, port = split_host_port(url.netloc.rpartition("@")[2], 80)
            upstream = self._upstream(host, port)
        except Failure as e:
            self._answer_error(e.status, str(e))
            return
        with upstream:
            upstream.settimeout(None)
            self._relay(upstream, url)

    def _relay(self, upstream, url):
        path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
        listed = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        chunked_in = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length_in = None
        if not chunked_in and self.headers.get("Content-Length") is not None:
            try:
                length_in = int(self.headers["Content-Length"])
                if length_in < 0:
                    raise ValueError
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
                self._copy_chunked_request(upstream)
            elif length_in is not None:
                self._copy_exactly(length_in, upstream)
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

    def _copy_exactly(self, n, upstream):
        while n > 0:
            data = self.rfile.read(min(n, PIECE))
            if not data:
                raise ConnectionError("the client closed the connection inside the request body")
            upstream.sendall(data)
            n -= len(data)

    def _copy_chunked_request(self, upstream):
        """Decodes the client's chunked body and re-encodes it upstream, one piece at a time."""
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ConnectionError("bad chunk size line")
            size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: dropped
                upstream.sendall(b"0\r\n\r\n")
                return
            upstream.sendall(b"%x\r\n" % size)
            self._copy_exactly(size, upstream)
            upstream.sendall(b"\r\n")
            if self.rfile.readline(8) not in (b"\r\n", b"\n"):
                raise ConnectionError("chunk not followed by CRLF")

    def _send_response(self, response):
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        # Chunked to HTTP/1.1 clients when the upstream chunked (length unknown); HTTP/1.0 clients
        # get such bodies delimited by closing the connection, like close-delimited upstream bodies.
        chunk_out = not no_body and response.chunked and self.request_version != "HTTP/1.0"
        close_delimited = not no_body and not chunk_out and response.length is None
        listed = {t.strip().lower() for t in (response.getheader("Connection") or "").split(",")}
        if close_delimited:
            self.close_connection = True
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            low = name.lower()
            if low in HOP_BY_HOP or low in listed:
                continue
            if low == "content-length" and not no_body and response.chunked:
                continue
            self.send_header(name, value)
        if chunk_out:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._log(response.status)
        if no_body:
            return
        try:
            while data := response.read1(PIECE):
                if chunk_out:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
            if chunk_out:
                self.wfile.write(b"0\r\n\r\n")
            if response.length:  # Content-Length announced but the upstream stopped early
                self.close_connection = True
        except (OSError, http.client.HTTPException):
            self.close_connection = True  # the client sees a truncated body, as it would directly

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


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    p = argparse.ArgumentParser(description="HTTP forward proxy for tests")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log", required=True)
    p.add_argument("--map", action="append", default=[], metavar="NAME=ADDR")
    p.add_argument("--user", metavar="USER:PASSWORD")
    a = p.parse_args()
    if a.port == 0 and not a.port_file:
        p.error("--port 0 needs --port-file")

    server = Server((a.listen, a.port), Handler)
    server.log_path = a.log
    server.log_lock = threading.Lock()
    server.credentials = a.user.encode() if a.user else None
    server.host_map = {}
    for m in a.map:
        name, sep, address = m.partition("=")
        if not sep or not name or not address:
            p.error(f"--map {m!r}: expected NAME=ADDR")
        server.host_map[name.lower()] = address
    open(a.log, "a").close()
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(tmp, a.port_file)  # readers never see a partial file
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
