#!/usr/bin/env python3
"""A compromised Kubernetes API server for the security tests: TLS, any bearer token accepted, and
answers shaped by --mode (the suite's faithful server is tests/kubeapi/kube_api_server.cpp; this one
only attacks).

  hostile_kube.py --cert FILE --key FILE --port-file FILE --mode MODE [--log FILE]

  deep           every list holds one object with a value nested 100,000 levels deep
  continue-loop  every list names more items to come with the same continue token, for ever
  secret-types   one pod pulls with an imagePullSecret whose .dockerconfigjson has "username": 1
  names          pods whose namespace, name or container name carry shell text and control bytes, an
                 image with a terminal escape, and a pull secret whose password reads "${HOME}"
  flood          every page of every list holds 10,000 pods and a fresh continue token, for ever
"""
import argparse
import base64
import http.server
import json
import os
import socketserver
import ssl

p = argparse.ArgumentParser()
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--mode", required=True, choices=["deep", "continue-loop", "secret-types", "names", "flood"])
p.add_argument("--log")
a = p.parse_args()

RESOURCES = {
    "/api/v1": ["pods", "replicationcontrollers", "podtemplates", "namespaces", "secrets"],
    "/apis/apps/v1": ["deployments", "statefulsets", "daemonsets", "replicasets"],
    "/apis/batch/v1": ["jobs", "cronjobs"],
}
POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "app", "namespace": "default", "uid": "1"},
       "spec": {"imagePullSecrets": [{"name": "pull"}],
                "containers": [{"name": "app", "image": "reg.example.com/team/app:1"}]}}
DOCKERCONFIG = {"auths": {"reg.example.com": {"username": 1, "password": {"x": 1}}}}
if a.mode == "names":
    DOCKERCONFIG = {"auths": {"reg.example.com": {"username": "$USER", "password": "${HOME}"}}}


def pod(name, container, image, ns="default", secrets=()):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": name},
            "spec": {"imagePullSecrets": [{"name": s} for s in secrets],
                     "containers": [{"name": container, "image": image}]}}


NAMED_PODS = [
    pod("web\x1b[31m; touch /tmp/im-pwned", "web", "reg.example.com/team/a:1"),
    pod("ok", "c\nkubectl delete namespace prod", "reg.example.com/team/b:1"),
    pod("evil", "evil", "reg.example.com/team/b:1", ns="default; touch /tmp/im-pwned"),
    pod("good", "good", "reg.example.com/team/c:1", secrets=["pull", "../../secrets/x"]),
    pod("bad-image", "x", "reg.example.com/team/\x1b]0;title\x07x:1"),
]
page = [0]
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
          "metadata": {"name": "pull", "namespace": "default"},
          "data": {".dockerconfigjson": base64.b64encode(json.dumps(DOCKERCONFIG).encode()).decode()}}


def log(line):
    if a.log:
        with open(a.log, "a") as f:
            f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        log(f"GET {self.path}")
        path = self.path.split("?", 1)[0]
        if path in RESOURCES:
            return self.send(200, {"kind": "APIResourceList", "groupVersion": path.rsplit("/", 2)[-1],
                                   "resources": [{"name": n, "namespaced": True, "kind": n} for n in RESOURCES[path]]})
        if path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
            return self.send(200, {"kind": "Namespace", "metadata": {"name": path.rsplit("/", 1)[1]}})
        if path == "/api/v1/namespaces/default/secrets/pull":
            return self.send(200, SECRET)
        items = []
        meta = {}
        if a.mode == "continue-loop":
            meta["continue"] = "again"
        if a.mode == "secret-types" and path.endswith("/pods"):
            items = [POD]
        if a.mode == "names" and path.endswith("/pods"):
            items = NAMED_PODS
        if a.mode == "flood" and path.endswith("/pods"):
            page[0] += 1
            meta["continue"] = "page-%d" % page[0]
            body = (b'{"kind":"List","apiVersion":"v1","metadata":' + json.dumps(meta).encode() + b',"items":[' +
                    b",".join(json.dumps(pod("p%d-%d" % (page[0], i), "c", "reg.example.com/team/app:%d" % (i % 50)))
                              .encode() for i in range(10000)) + b"]}")
            return self.send(200, body)
        if a.mode == "deep" and path.endswith("/pods"):
            plain = json.dumps(POD).encode()
            deep_pod = plain[:-1] + b',"x-deep":' + b"[" * 100000 + b"]" * 100000 + b"}"
            return self.send(200, b'{"kind":"List","apiVersion":"v1","metadata":{},"items":[' + deep_pod + b"]}")
        return self.send(200, {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": items})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(a.cert, a.key)
server = Server(("127.0.0.1", 0), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(a.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(a.port_file + ".tmp", a.port_file)
server.serve_forever()
