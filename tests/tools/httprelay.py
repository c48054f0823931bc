"""What the relaying test servers share (standard library only): forward_proxy.py and harbor_api.py
both pass requests on to an upstream and its responses back, streaming the bodies.

Each script imports this module from its own directory:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

- RelayMixin: for their http.server.BaseHTTPRequestHandler: the request log, request framing, copying
  request bodies upstream (Content-Length or chunked), small answers of our own, and passing an
  upstream response back (with a hook for rewriting its header values).
- basic_credentials, connection_tokens: header parsing.
- add_server_arguments, parse_arguments, ThreadingServer, serve: the options every such server takes
  (--listen, --port, --port-file, --log), one thread per client connection, the --port-file handshake.
"""
import base64
import binascii
import http.client
import http.server
import os
import threading

PIECE = 64 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) are never forwarded; framing headers are set by us.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "transfer-encoding", "upgrade"}


def basic_credentials(authorization):
    """The decoded credentials (b"USER:PASSWORD") of a Basic (Proxy-)Authorization header value, or None."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def connection_tokens(value):
    """The header names (lower case) a Connection header value lists: hop-by-hop for this message."""
    return {t.strip().lower() for t in (value or "").split(",")}


class RelayMixin:
    """For a BaseHTTPRequestHandler that relays requests, served by serve() (which sets up the log)."""

    # Whether a body the upstream delimits by closing the connection goes to HTTP/1.1 clients chunked
    # (their connection stays open) rather than close-delimited as well. Chunked upstream bodies go
    # out chunked to HTTP/1.1 clients either way; HTTP/1.0 clients get every body of unknown length
    # close-delimited.
    rechunk_close_delimited = False

    def log_message(self, *args):
        pass  # our own log (one line per request) is written by _log

    def _log(self, status):
        with self.server.log_lock, open(self.server.log_path, "a", encoding="utf-8") as f:
            f.write(f"{self.command} {self.path} {status}\n")

    def _request_framing(self):
        """(chunked, length) of the request body; raises ValueError for a bad Content-Length."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True, None
        if self.headers.get("Content-Length") is None:
            return False, None
        length = int(self.headers["Content-Length"])
        if length < 0:
            raise ValueError("negative Content-Length")
        return False, length

    def _copy_exactly(self, n, send):
        """Copies N bytes of the request body to SEND (a function taking bytes), one piece at a time."""
        while n > 0:
            data = self.rfile.read(min(n, PIECE))
            if not data:
                raise ConnectionError("the client closed the connection inside the request body")
            send(data)
            n -= len(data)

    def _copy_chunked_request(self, send):
        """Decodes the client's chunked body and re-encodes it to SEND, one piece at a time."""
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ConnectionError("bad chunk size line")
            size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: dropped
                send(b"0\r\n\r\n")
                return
            send(b"%x\r\n" % size)
            self._copy_exactly(size, send)
            send(b"\r\n")
            if self.rfile.readline(8) not in (b"\r\n", b"\n"):
                raise ConnectionError("chunk not followed by CRLF")

    def _send_small(self, status, body, headers=(), content_type="text/plain"):
        """A complete answer of our own (BODY: bytes); "Connection: close" if the connection closes
        after it. Neither reads the request body nor logs."""
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _response_header(self, name, value):
        """Hook: the value of upstream response header NAME as passed to the client (here: as is)."""
        return value

    def _send_response(self, response):
        """Passes the upstream's http.client.HTTPResponse (headers read) back to the client."""
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        # Re-framed bodies lose their Content-Length and go out chunked to HTTP/1.1 clients; a body of
        # unknown length that does not go out chunked is delimited by closing the connection.
        reframe = response.chunked or (self.rechunk_close_delimited and response.length is None)
        chunk_out = not no_body and reframe and self.request_version != "HTTP/1.0"
        if not no_body and not chunk_out and response.length is None:
            self.close_connection = True
        listed = connection_tokens(response.getheader("Connection"))
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            low = name.lower()
            if low in HOP_BY_HOP or low in listed:
                continue
            if low == "content-length" and not no_body and reframe:
                continue
            self.send_header(name, self._response_header(name, value))
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


def add_server_arguments(p):
    """Adds --listen, --port, --port-file and --log to the argparse.ArgumentParser P."""
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log", required=True)


def parse_arguments(p):
    """P's parsed arguments, the ones add_server_arguments added checked."""
    a = p.parse_args()
    if a.port == 0 and not a.port_file:
        p.error("--port 0 needs --port-file")
    return a


class ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def serve(server, args):
    """Creates the log ARGS.log (one line per request, RelayMixin._log), writes the port SERVER listens
    on to ARGS.port_file (if given), then serves until interrupted."""
    server.log_path = args.log
    server.log_lock = threading.Lock()
    open(args.log, "a").close()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(tmp, args.port_file)  # readers never see a partial file
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
