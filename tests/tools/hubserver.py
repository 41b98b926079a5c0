#!/usr/bin/python3
"""hubserver.py - a small local stand-in for a Hugging Face style hub, for tests.

Why: the fetch step (pipelines/fetch-model.sh) must be tested for resuming,
verification, timeouts and errors without touching the internet. This server
binds 127.0.0.1 only, on a free port it writes to --port-file, and serves

  GET|HEAD /OWNER/REPO/resolve/main/FILE   LFS files (.gguf .safetensors .bin):
                                           302 to /cdn/OWNER/REPO/FILE with
                                           X-Linked-Etag (sha256) and X-Linked-Size;
                                           other files: the bytes, ETag = git blob sha1
  GET|HEAD /cdn/OWNER/REPO/FILE            the bytes, with HTTP Range support
  GET      /api/models/OWNER/REPO          JSON listing: siblings[].rfilename,
                                           size, lfs.sha256
from ROOT/OWNER/REPO/FILE. Faults on demand: --cut-after N (close the
connection after N body bytes, for the first --cut-times data requests),
--stall-after N (send N bytes, then nothing), --chunk-delay S (sleep S
seconds after each 16 KiB, a slow link), --bad-sha (advertise a wrong
sha256), --no-range (ignore Range). Every request is logged to --log as
"METHOD PATH range=RANGE". The server exits by itself after --max-seconds.

Also: `hubserver.py mkgguf OUT NBYTES` writes a small valid GGUF v3 file
(one F32 tensor of about NBYTES bytes) for the tests to serve.
Stdlib only (/usr/bin/python3).
"""
import argparse
import hashlib
import http.server
import json
import os
import re
import socket
import struct
import sys
import threading
import time

CHUNK = 16384


def sha256_file(path):
    """Hex sha256 of a file (what the hub publishes as the LFS oid)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def git_blob_sha1(path):
    """git's blob id, which the hub sends as ETag for files not in LFS."""
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


LFS_EXT = (".gguf", ".safetensors", ".bin")


def is_lfs(path):
    """Like a hub repo's .gitattributes: big binary files live in LFS."""
    return path.lower().endswith(LFS_EXT)


class State:
    """Shared, lock-protected server state: options, fault counters, log."""

    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Lock()
        self.cuts_done = 0
        self.sha_cache = {}

    def log(self, line):
        if not self.opts.log:
            return
        with self.lock:
            with open(self.opts.log, "a") as f:
                f.write(line + "\n")

    def take_cut(self):
        with self.lock:
            if self.opts.cut_after is None or self.cuts_done >= self.opts.cut_times:
                return False
            self.cuts_done += 1
            return True

    def sha(self, path, kind="sha256"):
        st = os.stat(path)
        key = (path, kind, st.st_size, st.st_mtime_ns)
        with self.lock:
            if key in self.sha_cache:
                return self.sha_cache[key]
        h = sha256_file(path) if kind == "sha256" else git_blob_sha1(path)
        if self.opts.bad_sha:
            h = hashlib.sha256(h.encode()).hexdigest()[:len(h)]  # well-formed but wrong
        with self.lock:
            self.sha_cache[key] = h
        return h


NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def safe_join(root, parts):
    """Map URL path parts under root, refusing anything that could escape it."""
    for p in parts:
        if not NAME.match(p) or p in (".", ".."):
            return None
    return os.path.join(root, *parts)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubserver/1"

    def log_message(self, fmt, *args):  # quiet: tests read --log instead
        pass

    @property
    def st(self):
        return self.server.state

    def do_HEAD(self):
        self.route(head=True)

    def do_GET(self):
        self.route(head=False)

    def send_json(self, code, obj, head, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def not_found(self, head, what="EntryNotFound"):
        self.send_json(404, {"error": what}, head, {"X-Error-Code": what})

    def route(self, head):
        path = self.path.split("?", 1)[0]
        self.st.log("%s %s range=%s" % (self.command, path, self.headers.get("Range", "-")))
        parts = [p for p in path.split("/") if p]
        root = self.st.opts.root
        if len(parts) == 4 and parts[0] == "api" and parts[1] == "models":
            return self.api(parts[2], parts[3], head)
        if len(parts) >= 5 and parts[2] == "resolve" and parts[3] == "main":
            f = safe_join(root, parts[:2] + parts[4:])
            if f is None or not os.path.isfile(f):
                return self.not_found(head)
            if not is_lfs(f):  # a plain git file: served in place, ETag = git blob id
                return self.data(f, head, self.st.sha(f, "git"))
            loc = "/cdn/" + "/".join(parts[:2] + parts[4:])
            sha = self.st.sha(f)
            self.send_response(302)
            self.send_header("Location", loc)
            self.send_header("X-Linked-Etag", '"%s"' % sha)
            self.send_header("ETag", '"%s"' % sha)
            self.send_header("X-Linked-Size", str(os.path.getsize(f)))
            self.send_header("X-Repo-Commit", "0" * 40)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if len(parts) >= 4 and parts[0] == "cdn":
            f = safe_join(root, parts[1:])
            if f is None or not os.path.isfile(f):
                return self.not_found(head)
            return self.data(f, head, self.st.sha(f))
        return self.not_found(head, "RepositoryNotFound")

    def api(self, owner, repo, head):
        d = safe_join(self.st.opts.root, [owner, repo])
        if d is None or not os.path.isdir(d):
            return self.send_json(404, {"error": "Repository not found"}, head,
                                  {"X-Error-Code": "RepositoryNotFound"})
        sib = []
        for name in sorted(os.listdir(d)):
            f = os.path.join(d, name)
            if os.path.isfile(f):
                size = os.path.getsize(f)
                ent = {"rfilename": name, "size": size}
                if is_lfs(f):
                    ent["lfs"] = {"sha256": self.st.sha(f), "size": size, "pointerSize": 134}
                else:
                    ent["blobId"] = self.st.sha(f, "git")
                sib.append(ent)
        self.send_json(200, {"id": owner + "/" + repo, "modelId": owner + "/" + repo,
                             "sha": "0" * 40, "siblings": sib}, head)

    def data(self, f, head, etag):
        size = os.path.getsize(f)
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        partial = False
        if rng and not self.st.opts.no_range:
            m = re.match(r"^bytes=(\d+)-(\d*)$", rng.strip())
            if m:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % size)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                partial = True
        n = end - start + 1
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"%s"' % etag)
        self.send_header("Content-Length", str(n))
        if partial:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if head:
            return
        opts = self.st.opts
        limit = None
        cut = False
        if opts.stall_after is not None:
            limit = opts.stall_after
        elif self.st.take_cut():
            limit, cut = opts.cut_after, True
        sent = 0
        with open(f, "rb") as fh:
            fh.seek(start)
            while sent < n:
                want = min(CHUNK, n - sent)
                if limit is not None:
                    want = min(want, limit - sent)
                    if want <= 0:
                        break
                blk = fh.read(want)
                if not blk:
                    break
                self.wfile.write(blk)
                sent += len(blk)
                if opts.chunk_delay > 0:
                    self.wfile.flush()
                    time.sleep(opts.chunk_delay)
        self.wfile.flush()
        if limit is not None and sent < n:
            if cut:
                self.st.log("CUT %s after %d bytes" % (self.path, sent))
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            else:
                self.st.log("STALL %s after %d bytes" % (self.path, sent))
                deadline = time.monotonic() + opts.stall_seconds
                while time.monotonic() < deadline:
                    time.sleep(0.1)
                self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(opts):
    """Bind loopback on a free port, publish it, serve until --max-seconds."""
    srv = Server(("127.0.0.1", opts.port), Handler)
    srv.state = State(opts)
    port = srv.server_address[1]
    if opts.port_file:
        tmp = opts.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, opts.port_file)
    t = threading.Timer(opts.max_seconds, srv.shutdown)
    t.daemon = True
    t.start()
    srv.serve_forever(poll_interval=0.1)
    return 0


def mkgguf(out, nbytes):
    """A minimal valid GGUF v3: general.architecture + one F32 tensor."""
    def gstr(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b
    n = max(1, nbytes // 4)
    kv = gstr("general.architecture") + struct.pack("<I", 8) + gstr("bn-fetch-test")
    kv += gstr("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32)
    ti = gstr("t") + struct.pack("<I", 1) + struct.pack("<Q", n) + struct.pack("<I", 0) + struct.pack("<Q", 0)
    hdr = b"GGUF" + struct.pack("<IQQ", 3, 1, 2) + kv + ti
    hdr += b"\0" * ((-len(hdr)) % 32)
    data = b"".join(struct.pack("<f", ((i * 2654435761) % 1000) / 997.0) for i in range(n))
    with open(out + ".tmp", "wb") as f:
        f.write(hdr + data)
    os.rename(out + ".tmp", out)
    return 0


def main(argv):
    if len(argv) >= 1 and argv[0] == "mkgguf":
        if len(argv) != 3:
            print("usage: hubserver.py mkgguf OUT NBYTES", file=sys.stderr)
            return 2
        return mkgguf(argv[1], int(argv[2]))
    ap = argparse.ArgumentParser(description="local test hub (127.0.0.1 only)")
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--cut-after", type=int)
    ap.add_argument("--cut-times", type=int, default=1)
    ap.add_argument("--stall-after", type=int)
    ap.add_argument("--stall-seconds", type=float, default=30.0)
    ap.add_argument("--chunk-delay", type=float, default=0.0)
    ap.add_argument("--bad-sha", action="store_true")
    ap.add_argument("--no-range", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    return serve(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
