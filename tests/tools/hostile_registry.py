#!/usr/bin/env python3
"""A compromised *source* registry for the security tests (tests/integration/test_hostile_*.sh).

It serves one image from an OCI layout (made by make-oci-layout.sh) over the distribution API,
anonymously, for any repository name, and lies in the ways the options below ask. The destination
of those tests is always a real docker-registry: this server only plays the attacker.

  hostile_registry.py --layout DIR --tag TAG --port-file FILE [--log FILE] [options]

  --tags FILE            the answer to every tags/list: a JSON file (may hold any strings)
  --any-manifest         any /v2/<anything>/manifests/<anything> answers with the tag's manifest
                         (what a registry that normalises "../" paths itself would do)
  --manifest FILE        serve FILE's bytes as the tag's manifest (its digest is computed)
  --content-type CT      the Content-Type of manifest answers (default: the layout's media type)
  --blob DIGEST=FILE     serve FILE's bytes for blob DIGEST (whatever they hash to); repeatable
  --deep PART            PART answers with a well-formed document that carries a value nested 100,000
                         levels deep (what overflows a recursive copy or dump); PART is one of
                         manifests (the tag's manifest with it), index (the tag is an OCI index of the
                         image whose child descriptor has it), tags, referrers (one valid referrer
                         descriptor with it); repeatable
  --link-loop            every tags/list answers with a Link header naming itself
  --trickle-manifest     manifest GETs send their body at 2 bytes per second
  --error-message TEXT   manifest GETs and HEADs answer --error-status (default 404) with this message
                         in the error JSON
  --referrers FILE       the answer to every referrers request (200, an OCI index)
  --dup-children N       the tag is an OCI index naming the image N times (one child, listed N times)
  --wide-index N         the tag is an OCI index of N different images (the image with an annotation
                         i = 0..N-1, each its own digest, served by digest)
  --endless-blob DIGEST  that blob's body never ends (chunked, 64 KiB at a time, as fast as it goes)
  --referrers-fanout N   N artifacts (served by digest) that the referrers API lists for ANY subject,
                         so that each of them has the same N referrers again
  --link-to URL          every tags/list names URL (another host) as its next page
  --many-tags N          every tags/list answers N distinct valid tags, in one page
  --raw-challenge BYTES  every manifest request answers 401 with this WWW-Authenticate (bytes given as
                         a Python bytes literal body, e.g. '\\x80Bearer')

  --tls CERT:KEY         serve HTTPS with this certificate and key
  --redirect-blobs URL   every blob GET answers 307 with Location: URL + the request's path (URL written
                         as given, e.g. "HTTP://127.0.0.1:PORT": plain http spelled in upper case)

Every request is logged as "METHOD PATH" (one line) to --log.
"""
import argparse
import hashlib
import http.server
import json
import os
import socketserver
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--layout", required=True)
p.add_argument("--tag", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--log")
p.add_argument("--tags")
p.add_argument("--any-manifest", action="store_true")
p.add_argument("--manifest")
p.add_argument("--content-type")
p.add_argument("--blob", action="append", default=[])
p.add_argument("--deep", action="append", default=[], choices=["manifests", "index", "tags", "referrers"])
p.add_argument("--link-loop", action="store_true")
p.add_argument("--trickle-manifest", action="store_true")
p.add_argument("--error-message")
p.add_argument("--error-status", type=int, default=404)
p.add_argument("--referrers")
p.add_argument("--dup-children", type=int)
p.add_argument("--wide-index", type=int)
p.add_argument("--endless-blob")
p.add_argument("--referrers-fanout", type=int)
p.add_argument("--link-to")
p.add_argument("--many-tags", type=int)
p.add_argument("--raw-challenge")
p.add_argument("--tls")
p.add_argument("--redirect-blobs")
a = p.parse_args()

index = json.load(open(os.path.join(a.layout, "index.json")))
entry = next(m for m in index["manifests"]
             if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == a.tag)


def blob_path(digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(a.layout, "blobs", algo, hexd)


if a.manifest:
    manifest = open(a.manifest, "rb").read()
else:
    manifest = open(blob_path(entry["digest"]), "rb").read()
manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
content_type = a.content_type or entry["mediaType"]
# Children of an index in the layout are served by digest, with their own bytes.
overrides = {}
for b in a.blob:
    d, f = b.split("=", 1)
    overrides[d] = open(f, "rb").read()
many_tags = (json.dumps({"name": "x", "tags": [f"t{i}" for i in range(a.many_tags)]}).encode()
             if a.many_tags else None)
raw_challenge = eval("b'" + a.raw_challenge + "'") if a.raw_challenge else None
deep = b"[" * 100000 + b"]" * 100000
extra_manifests = {}  # digest -> bytes, served by digest
if a.referrers_fanout:
    empty = b"{}"
    empty_digest = "sha256:" + hashlib.sha256(empty).hexdigest()
    overrides[empty_digest] = empty
    fanout = []
    for i in range(a.referrers_fanout):
        art = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "artifactType": "application/example",
                          "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2},
                          "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2}],
                          "annotations": {"n": str(i)}}).encode()
        fanout.append((art, "sha256:" + hashlib.sha256(art).hexdigest()))
if a.dup_children or a.wide_index:
    children = []
    base = json.loads(manifest)
    for i in range(a.wide_index or 1):
        child = dict(base, annotations={"i": str(i)}) if a.wide_index else base
        data = json.dumps(child).encode() if a.wide_index else manifest
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        extra_manifests[digest] = data
        children.append({"mediaType": entry["mediaType"], "digest": digest, "size": len(data),
                         "platform": {"os": "linux", "architecture": "amd64"}})
    if a.dup_children:
        children = children * a.dup_children
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": children}).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    content_type = "application/vnd.oci.image.index.v1+json"


def with_deep(document: bytes) -> bytes:
    """`document` (a JSON object) with one more member, "x-deep", nested 100,000 levels."""
    return document.rstrip()[:-1] + b',"x-deep":' + deep + b"}"


deep_manifest = with_deep(manifest)
deep_index = (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[' +
              with_deep(json.dumps({"mediaType": entry["mediaType"], "digest": entry["digest"],
                                    "size": entry["size"],
                                    "platform": {"os": "linux", "architecture": "amd64"}}).encode()) +
              b',' + json.dumps({"mediaType": entry["mediaType"], "digest": entry["digest"], "size": entry["size"],
                                 "platform": {"os": "linux", "architecture": "arm64"}}).encode() + b']}')
deep_tags = with_deep(json.dumps({"name": "x", "tags": [a.tag]}).encode())
deep_referrers = (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[' +
                  with_deep(json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                        "digest": entry["digest"], "size": entry["size"],
                                        "artifactType": "application/example"}).encode()) + b']}')
tags_answer = open(a.tags, "rb").read() if a.tags else None
referrers_answer = open(a.referrers, "rb").read() if a.referrers else None


def log(line):
    if a.log:
        with open(a.log, "a") as f:
            f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=(), head=False, trickle=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if trickle:
            for i in range(0, len(body), 2):
                self.wfile.write(body[i:i + 2])
                self.wfile.flush()
                time.sleep(1)
            return
        self.wfile.write(body)

    def manifest_of(self, ref):
        """(bytes, content type) of a manifest reference, or None."""
        if ref in extra_manifests:
            return extra_manifests[ref], entry["mediaType"]
        if ref == a.tag or ref == manifest_digest or a.any_manifest:
            if ref.startswith("sha256:") and ref != manifest_digest:
                path = blob_path(ref)
                if os.path.isfile(path):
                    data = open(path, "rb").read()
                    return data, json.loads(data).get("mediaType", content_type)
            return manifest, content_type
        if ref.startswith("sha256:") and os.path.isfile(blob_path(ref)):
            data = open(blob_path(ref), "rb").read()
            return data, json.loads(data).get("mediaType", content_type)
        return None

    def route(self, head=False):
        path = self.path.split("?", 1)[0]
        log(f"{self.command} {self.path}")
        if path == "/v2/" or path == "/v2":
            return self.answer(200, b"{}", [("Content-Type", "application/json")], head)
        if "/tags/list" in path:
            if many_tags is not None:
                return self.answer(200, many_tags, [("Content-Type", "application/json")], head)
            if a.link_to:
                return self.answer(200, json.dumps({"name": "x", "tags": [a.tag]}).encode(),
                                   [("Content-Type", "application/json"), ("Link", f'<{a.link_to}>; rel="next"')], head)
            if "tags" in a.deep:
                return self.answer(200, deep_tags, [("Content-Type", "application/json")], head)
            body = tags_answer if tags_answer is not None else json.dumps({"name": "x", "tags": [a.tag]}).encode()
            headers = [("Content-Type", "application/json")]
            if a.link_loop:
                headers.append(("Link", f'<{path}?n=1000&last=x>; rel="next"'))
            return self.answer(200, body, headers, head)
        if "/referrers/" in path:
            if a.referrers_fanout:
                index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
                                        "size": len(m), "artifactType": "application/example"} for m, d in fanout]}
                return self.answer(200, json.dumps(index).encode(),
                                   [("Content-Type", "application/vnd.oci.image.index.v1+json")], head)
            if "referrers" in a.deep:
                return self.answer(200, deep_referrers,
                                   [("Content-Type", "application/vnd.oci.image.index.v1+json")], head)
            if referrers_answer is not None:
                return self.answer(200, referrers_answer,
                                   [("Content-Type", "application/vnd.oci.image.index.v1+json")], head)
            return self.answer(404, b'{"errors":[{"code":"NOT_FOUND","message":"no referrers API"}]}',
                               [("Content-Type", "application/json")], head)
        if "/manifests/" in path:
            ref = path.split("/manifests/", 1)[1]
            if raw_challenge is not None:
                self.send_response(401)
                self._headers_buffer.append(b"WWW-Authenticate: " + raw_challenge + b"\r\n")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if a.referrers_fanout:
                for m, d in fanout:
                    if ref == d:
                        return self.answer(200, m, [("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                                                    ("Docker-Content-Digest", d)], head)
            if a.error_message is not None:
                body = json.dumps({"errors": [{"code": "DENIED", "message": a.error_message}]}).encode()
                return self.answer(a.error_status, body, [("Content-Type", "application/json")], head)
            for part, doc, ct in (("manifests", deep_manifest, content_type),
                                  ("index", deep_index, "application/vnd.oci.image.index.v1+json")):
                digest = "sha256:" + hashlib.sha256(doc).hexdigest()
                if part in a.deep and ref in (a.tag, digest):
                    return self.answer(200, doc, [("Content-Type", ct), ("Docker-Content-Digest", digest)], head)
            found = self.manifest_of(ref)
            if found is None:
                return self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}',
                                   [("Content-Type", "application/json")], head)
            data, ct = found
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            return self.answer(200, data, [("Content-Type", ct), ("Docker-Content-Digest", digest)], head,
                               trickle=a.trickle_manifest and not head)
        if "/blobs/" in path:
            digest = path.split("/blobs/", 1)[1]
            if a.redirect_blobs and not head:
                return self.answer(307, b"", [("Location", a.redirect_blobs + path)], head)
            if digest == a.endless_blob and not head:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"{" * 65536
                try:
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    return
            if digest in overrides:
                data = overrides[digest]
            elif ":" in digest and os.path.isfile(blob_path(digest)):
                data = open(blob_path(digest), "rb").read()
            else:
                return self.answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}',
                                   [("Content-Type", "application/json")], head)
            return self.answer(200, data, [("Content-Type", "application/octet-stream"),
                                           ("Docker-Content-Digest", digest)], head)
        return self.answer(404, b"", [], head)

    def do_GET(self):
        self.route()

    def do_HEAD(self):
        self.route(head=True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", 0), Handler)
if a.tls:
    import ssl
    cert, key = a.tls.split(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
with open(a.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(a.port_file + ".tmp", a.port_file)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
