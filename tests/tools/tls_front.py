#!/usr/bin/env python3
"""A TLS-terminating reverse proxy in front of a plain-HTTP registry, the way many sites run one:
it does not send X-Forwarded-Proto, so the registry behind it builds its upload Locations as
http://<this proxy's address>/... (tests/integration/test_hostile_credentials.sh).

  tls_front.py --upstream HOST:PORT --cert FILE --key FILE --port-file FILE --log FILE

On its one port it speaks TLS. A client that sends plain HTTP there (following such a Location
as it is) is answered 400, and the request line is logged with whether it carried credentials:
"PLAINTEXT METHOD PATH authorization=yes|no". TLS requests are logged as "TLS METHOD PATH".
"""
import argparse
import http.client
import http.server
import os
import socket
import socketserver
import ssl

p = argparse.ArgumentParser()
p.add_argument("--upstream", required=True)
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--log", required=True)
a = p.parse_args()

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(a.cert, a.key)
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def log(line):
    with open(a.log, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        if not isinstance(self.connection, ssl.SSLSocket):
            log(f"PLAINTEXT {self.command} {self.path} "
                f"authorization={'yes' if self.headers.get('Authorization') else 'no'}")
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        log(f"TLS {self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(a.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        upstream.request(self.command, self.path, body=body, headers=headers)
        resp = upstream.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        # One port, both ways: a TLS ClientHello starts with 0x16; anything else is plain HTTP.
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":
            try:
                request = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        self.RequestHandlerClass(request, client_address, self)


server = Server(("127.0.0.1", 0), Handler)
with open(a.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(a.port_file + ".tmp", a.port_file)
server.serve_forever()
