#!/usr/bin/env python3
"""bench/seed_storage.py - writes images straight into a docker-registry's filesystem storage.

    seed_storage.py ROOT NAMESPACE REPOS TAGS_PER_REPO

Seeding 10,000 tags through the registry API takes minutes; writing the files the registry would
write takes seconds. ROOT is the storage driver's rootdirectory (the registry must not be running
on it yet). Each repository NAMESPACE/rNNNN gets TAGS_PER_REPO tags t1..tN: one 1 KiB layer shared
by the repository's tags, and per tag its own config blob (so its own manifest digest), as an
OCI image manifest. The layout written is the one distribution's filesystem driver reads:

    docker/registry/v2/blobs/sha256/<first two hex>/<hex>/data
    docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link            (layer and config)
    docker/registry/v2/repositories/<repo>/_manifests/revisions/sha256/<hex>/link
    docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link
    docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link

Prints "repository tag digest" per tag on stdout, for the benchmark to verify the copies against.
"""
import hashlib
import json
import os
import sys


def blob(root, data):
    hexd = hashlib.sha256(data).hexdigest()
    d = os.path.join(root, "docker/registry/v2/blobs/sha256", hexd[:2], hexd)
    if not os.path.exists(os.path.join(d, "data")):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "data"), "wb") as f:
            f.write(data)
    return hexd


def link(path, hexd):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "link"), "w") as f:
        f.write("sha256:" + hexd)


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: seed_storage.py ROOT NAMESPACE REPOS TAGS_PER_REPO")
    root, ns, repos, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    out = []
    for r in range(1, repos + 1):
        repo = "%s/r%04d" % (ns, r)
        rdir = os.path.join(root, "docker/registry/v2/repositories", repo)
        layer = ("layer of %s\n" % repo).encode().ljust(1024, b".")
        layer_hex = blob(root, layer)
        link(os.path.join(rdir, "_layers/sha256", layer_hex), layer_hex)
        for t in range(1, per + 1):
            tag = "t%d" % t
            config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": repo + ":" + tag}},
                                 "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_hex]}}).encode()
            config_hex = blob(root, config)
            link(os.path.join(rdir, "_layers/sha256", config_hex), config_hex)
            manifest = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + config_hex,
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + layer_hex,
                            "size": len(layer)}],
            }).encode()
            m_hex = blob(root, manifest)
            link(os.path.join(rdir, "_manifests/revisions/sha256", m_hex), m_hex)
            link(os.path.join(rdir, "_manifests/tags", tag, "current"), m_hex)
            link(os.path.join(rdir, "_manifests/tags", tag, "index/sha256", m_hex), m_hex)
            out.append("%s %s sha256:%s" % (repo, tag, m_hex))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
