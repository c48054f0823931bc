#!/usr/bin/env python3
"""A file server for the redirect test: serves files below ROOT (a registry's storage directory, the
target of docker-registry's `redirect` storage middleware) and appends one line per request to LOG:
`METHOD PATH authorization=<yes|no>`. Usage: header_recorder.py HOST PORT ROOT LOG"""
import http.server
import os
import sys

host, port, root, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


class Handler(http.server.BaseHTTPRequestHandler):
    def _serve(self, body):
        path = os.path.normpath(os.path.join(root, self.path.split("?", 1)[0].lstrip("/")))
        with open(log, "a") as f:
            f.write(f"{self.command} {self.path.split('?', 1)[0]} authorization="
                    f"{'yes' if self.headers.get('Authorization') else 'no'}\n")
        if not path.startswith(os.path.abspath(root)) or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 16):
                    self.wfile.write(chunk)

    def do_GET(self):
        self._serve(True)

    def do_HEAD(self):
        self._serve(False)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()
