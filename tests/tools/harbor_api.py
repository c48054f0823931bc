#!/usr/bin/env python3
"""A test double of the parts of Harbor a registry client uses, in front of a real docker-registry
(standard library only, one thread per client connection).

  harbor_api.py --upstream http://HOST:PORT --log FILE (--port N | --port 0 --port-file FILE)
                [--listen ADDR] [--page-size-cap N] [--admin USER]

- /v2/ and everything below it except /v2/_catalog: forwarded to the upstream registry (any method,
  headers including Authorization, request and response bodies streamed in 64 KiB pieces, Content-Length
  or chunked; status and headers passed back). The upstream sees its own address as Host, and
  absolute URLs it answers with (Location, Content-Location, Link) are rewritten to the address the
  client used, so that the client keeps talking to the double. One upstream connection per request;
  client connections are kept alive (HTTP/1.1).
- /v2/_catalog: like Harbor, only a system admin (--admin USER, whose Basic credentials the upstream
  then checks) may list the catalog; anyone else gets 401 with Harbor's error JSON.
- GET /api/v2.0/projects/{project}/repositories?page=P&page_size=S: Harbor's project API. Needs Basic
  credentials the upstream accepts (checked with GET /v2/) -> else 401; needs the header
  "X-Is-Resource-Name: true" -> else 400 (stricter than Harbor, so a test proves the client sends it).
  Lists the upstream's repositories named "{project}/...", sorted, page P (1-based) of S (S capped at
  --page-size-cap, default 100, like Harbor), as Harbor's JSON array of repository objects, with
  X-Total-Count and Harbor's Link header: `<...page=P-1...>; rel="prev" , <...page=P+1...>; rel="next"`
  (prev first, joined by " , ", relative URLs, page_size = the size actually used; exactly what
  Harbor's BaseAPI.Links writes). A project without repositories is unknown: 404 NOT_FOUND.
- Anything else: 404 with Harbor's error JSON.
- --log FILE: one line per request, "METHOD TARGET STATUS" (TARGET with its query string).
- --port 0 with --port-file FILE: listen on a free port and write it to FILE once listening.
"""
import argparse
import http.client
import http.server
import json
import os
import re
import sys
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ next to the script
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httprelay import (HOP_BY_HOP, RelayMixin, ThreadingServer, add_server_arguments, basic_credentials,
                       connection_tokens, parse_arguments, serve)

# Response headers that may carry absolute URLs of the upstream.
URL_HEADERS = {"location", "content-location", "link"}
PROJECT_API = re.compile(r"/api/v2\.0/projects/([^/]+)/repositories")
TIMESTAMP = "2026-01-01T00:00:00.000Z"


def harbor_error(code, message):
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def basic_user(authorization):
    """The user name of a Basic Authorization header value, or None."""
    credentials = basic_credentials(authorization)
    if credentials is None:
        return None
    try:
        user, sep, _ = credentials.decode("utf-8").partition(":")
    except UnicodeDecodeError:
        return None
    return user if sep else None


class Upstream:
    """Where the real registry is: http://host:port."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise ValueError(f"--upstream {url!r}: expected http://HOST:PORT")
        self.host, self.port, self.netloc = u.hostname, u.port, u.netloc
        self.origin = f"http://{u.netloc}"

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def get(self, target, authorization):
        """A small GET of our own (the body is read whole): (status, headers, body)."""
        conn = self.connect()
        try:
            headers = {"Host": self.netloc, "Connection": "close"}
            if authorization:
                headers["Authorization"] = authorization
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


class Handler(RelayMixin, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "harbor_api"
    timeout = 300  # idle keep-alive connections end eventually
    rechunk_close_delimited = True  # bodies of unknown length go out chunked to HTTP/1.1 clients

    # ------------------------------------------------------------------ plumbing

    def _client_authority(self):
        host = self.headers.get("Host", "").strip()
        return host or f"{self.server.server_address[0]}:{self.server.server_address[1]}"

    def _discard_body(self):
        """Reads away a request body we answer ourselves (small ones); otherwise the connection closes."""
        if self.close_connection:
            return  # nothing more is read from this connection
        try:
            chunked, length = self._request_framing()
        except ValueError:
            self.close_connection = True
            return
        if chunked or (length or 0) > 1024 * 1024:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _answer(self, status, body, headers=(), content_type="application/json"):
        """A complete answer of our own."""
        self._discard_body()
        self._send_small(status, body, headers, content_type)
        self._log(status)

    # ------------------------------------------------------------------ routing

    def _route(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/v2/_catalog":
            self._catalog()
        elif path == "/v2" or path.startswith("/v2/"):
            self._forward()
        elif path == "/api/v2.0/ping":
            self._answer(200, b"Pong", content_type="text/plain; charset=utf-8")  # Harbor's, anonymous
        elif m := PROJECT_API.fullmatch(path):
            self._project_repositories(urllib.parse.unquote(m.group(1)))
        else:
            self._answer(404, harbor_error("NOT_FOUND", f"{path} not found"))

    def _guarded(self):
        try:
            self._route()
        except OSError:
            self.close_connection = True  # the client went away (or the socket broke): drop it

    do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = do_OPTIONS = _guarded

    # ------------------------------------------------------------------ /v2/_catalog

    def _catalog(self):
        admin = self.server.admin
        if admin is not None and basic_user(self.headers.get("Authorization")) == admin:
            self._forward()  # the upstream checks the admin's password
            return
        self._answer(401, harbor_error("UNAUTHORIZED", "unauthorized to list catalog: unauthorized"),
                     [("Www-Authenticate", 'Basic realm="harbor"')])

    # ------------------------------------------------------------------ /api/v2.0/projects/P/repositories

    def _project_repositories(self, project):
        if self.command != "GET":
            self._answer(405, harbor_error("METHOD_NOT_ALLOWED", f"{self.command} is not allowed"))
            return
        authorization = self.headers.get("Authorization")
        up = self.server.upstream
        try:
            if basic_user(authorization) is None or up.get("/v2/", authorization)[0] != 200:
                self._answer(401, harbor_error("UNAUTHORIZED", "unauthorized"))
                return
        except OSError as e:
            self._answer(502, harbor_error("UNKNOWN", f"upstream: {e}"))
            return
        if self.headers.get("X-Is-Resource-Name", "").strip().lower() != "true":
            self._answer(400, harbor_error("BAD_REQUEST", "this test double requires the header "
                                           "X-Is-Resource-Name: true (the project is given by name)"))
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            page = int(query.get("page", ["1"])[-1])
            size = int(query.get("page_size", ["10"])[-1])
            if page < 1 or size < 1:
                raise ValueError
        except ValueError:
            self._answer(400, harbor_error("BAD_REQUEST", "page and page_size must be positive integers"))
            return
        size = min(size, self.server.page_size_cap)
        try:
            everything = self._upstream_catalog(authorization)
            names = sorted(r for r in everything if r.startswith(project + "/"))
            if not names:
                self._answer(404, harbor_error("NOT_FOUND", f"project {project} not found"))
                return
            projects = sorted({r.split("/", 1)[0] for r in everything})
            ids = {r: i + 1 for i, r in enumerate(sorted(everything))}
            total = len(names)
            items = []
            for name in names[(page - 1) * size:page * size]:
                items.append({"id": ids[name], "name": name, "project_id": projects.index(project) + 1,
                              "artifact_count": self._tag_count(name, authorization), "pull_count": 0,
                              "creation_time": TIMESTAMP, "update_time": TIMESTAMP})
        except (OSError, RuntimeError, ValueError) as e:
            self._answer(502, harbor_error("UNKNOWN", f"upstream: {e}"))
            return
        # Harbor's BaseAPI.Links: prev first, then next, joined by " , ", with the size used.
        base = f"/api/v2.0/projects/{urllib.parse.quote(project, safe='')}/repositories"
        links = []
        if page > 1 and (page - 1) * size < total:
            links.append(f'<{base}?page={page - 1}&page_size={size}>; rel="prev"')
        if page * size < total:
            links.append(f'<{base}?page={page + 1}&page_size={size}>; rel="next"')
        headers = [("X-Total-Count", str(total))]
        if links:
            headers.append(("Link", " , ".join(links)))
        self._answer(200, json.dumps(items).encode(), headers)

    def _upstream_catalog(self, authorization):
        """Every repository of the upstream (docker-registry lets any htpasswd user list them)."""
        up, repos, target = self.server.upstream, [], "/v2/_catalog?n=100"
        for _ in range(10000):
            status, headers, body = up.get(target, authorization)
            if status != 200:
                raise RuntimeError(f"GET {target}: HTTP {status}")
            repos += json.loads(body).get("repositories") or []
            m = re.search(r"<([^>]*)>\s*;\s*rel=\"?next\"?", headers.get("Link", ""))
            if not m:
                return repos
            target = m.group(1)
            if target.startswith(up.origin):
                target = target[len(up.origin):]
        raise RuntimeError("the upstream catalog does not end")

    def _tag_count(self, name, authorization):
        status, _, body = self.server.upstream.get(f"/v2/{name}/tags/list", authorization)
        if status != 200:
            return 0
        return len(json.loads(body).get("tags") or [])

    # ------------------------------------------------------------------ forwarding to the registry

    def _forward(self):
        up = self.server.upstream
        listed = connection_tokens(self.headers.get("Connection"))
        try:
            chunked_in, length_in = self._request_framing()
        except ValueError:
            self.close_connection = True
            self._answer(400, harbor_error("BAD_REQUEST", "bad Content-Length"))
            return
        conn = up.connect()
        try:
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    low = name.lower()
                    if low in HOP_BY_HOP or low in listed or low in ("host", "content-length", "expect"):
                        continue
                    conn.putheader(name, value)
                conn.putheader("Host", up.netloc)
                if chunked_in:
                    conn.putheader("Transfer-Encoding", "chunked")
                elif length_in is not None:
                    conn.putheader("Content-Length", str(length_in))
                conn.putheader("Connection", "close")
                conn.endheaders()
                if chunked_in:
                    self._copy_chunked_request(conn.send)
                elif length_in:
                    self._copy_exactly(length_in, conn.send)
            except (OSError, ValueError, http.client.HTTPException) as e:
                # The body may be half read: the client connection cannot carry another request.
                self.close_connection = True
                self._answer(502, harbor_error("UNKNOWN", f"sending the request upstream: {e}"))
                return
            try:
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self.close_connection = True
                self._answer(502, harbor_error("UNKNOWN", f"reading the upstream response: {e!r}"))
                return
            with response:
                self._send_response(response)
        finally:
            conn.close()

    def _response_header(self, name, value):
        """The upstream's absolute URLs (Location, Content-Location, Link) point at the double instead."""
        if name.lower() in URL_HEADERS:
            return value.replace(self.server.upstream.origin, f"http://{self._client_authority()}")
        return value


def main():
    p = argparse.ArgumentParser(description="Harbor test double in front of a docker-registry")
    p.add_argument("--upstream", required=True, help="http://HOST:PORT of the real registry")
    add_server_arguments(p)
    p.add_argument("--page-size-cap", type=int, default=100)
    p.add_argument("--admin", help="the only user who may list /v2/_catalog")
    a = parse_arguments(p)
    if a.page_size_cap < 1:
        p.error("--page-size-cap must be at least 1")
    try:
        upstream = Upstream(a.upstream)
    except ValueError as e:
        p.error(str(e))

    server = ThreadingServer((a.listen, a.port), Handler)
    server.upstream = upstream
    server.admin = a.admin
    server.page_size_cap = a.page_size_cap
    serve(server, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
