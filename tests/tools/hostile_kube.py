#!/usr/bin/env python3
"""A compromised Kubernetes API server for the security tests: TLS, any bearer token accepted, and
answers shaped by --mode (the suite's faithful server is tests/kubeapi/kube_api_server.cpp; this one
only attacks).

  hostile_kube.py --cert FILE --key FILE --port-file FILE --mode MODE [--log FILE]

  deep           every list holds one object with a value nested 100,000 levels deep
  continue-loop  every list names more items to come with the same continue token, for ever
  secret-types   one pod pulls with an imagePullSecret whose .dockerconfigjson has "username": 1
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
p.add_argument("--mode", required=True, choices=["deep", "continue-loop", "secret-types"])
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
        if a.mode == "deep" and path.endswith("/pods"):
            pod = json.dumps(POD).encode()
            deep_pod = pod[:-1] + b',"x-deep":' + b"[" * 100000 + b"]" * 100000 + b"}"
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
