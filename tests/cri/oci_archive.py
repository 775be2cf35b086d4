#!/usr/bin/env python3
"""oci_archive.py LAYER_TAR OUT_TAR NAME ENTRYPOINT...: writes an OCI image
archive (the layout `ctr images import` reads) of one uncompressed layer,
named NAME (io.containerd.image.name), whose entrypoint is ENTRYPOINT."""

import hashlib
import io
import json
import sys
import tarfile


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    layer_path, out_path, name, *entrypoint = sys.argv[1:]
    with open(layer_path, "rb") as f:
        layer = f.read()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": entrypoint or None,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [blob(layer)]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob(config),
            "size": len(config),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": blob(layer),
            "size": len(layer),
        }],
    }).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": blob(manifest),
            "size": len(manifest),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
            },
        }],
    }).encode()
    with tarfile.open(out_path, "w") as out:
        def add(path, data):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", index)
        for data in (config, manifest, layer):
            add("blobs/sha256/" + blob(data).split(":", 1)[1], data)


if __name__ == "__main__":
    main()
