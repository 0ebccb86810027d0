#!/usr/bin/env python3
"""The file pipeline, measured: files/s and MB/s through the whole saga (upload,
text extraction, offline embeddings, search index, notification) for a mix of
formats, the share of time per step (from each file's saga record), and the peak
RSS of `serve` while one 100 MB file is uploaded.

    scripts/bench-files.py [files per format, default 20]

Starts its own redis-server and `strategist serve` (release build, SQLite in a
temporary folder). Needs a release build (cargo build --release).
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request, zipfile, io

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("STRATEGIST_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "target")), "release", "strategist")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def words(i, n):
    vocab = ("market growth customer revenue product launch pricing channel partner "
             "strategy retention churn segment brand campaign budget forecast").split()
    return " ".join(vocab[(i * 7 + k * 3) % len(vocab)] + str(k % 50) for k in range(n))


def docx(text):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("word/document.xml", '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>%s</w:t></w:r></w:p></w:body></w:document>' % text)
    return buf.getvalue()


def pdf(text):
    # A minimal one-page PDF with an uncompressed text stream.
    stream = ("BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text[:2000]).encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out = bytearray(b"%PDF-1.4\n"); offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out)); out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def samples(i):
    t = words(i, 1500)
    return [("t%d.txt" % i, t.encode()), ("m%d.md" % i, ("# Notes\n\n" + t).encode()),
            ("h%d.html" % i, ("<html><body><p>%s</p><script>x()</script></body></html>" % t).encode()),
            ("c%d.csv" % i, ("a,b\n" + "\n".join("%s,%d" % (w, k) for k, w in enumerate(t.split()[:800]))).encode()),
            ("j%d.json" % i, json.dumps({"items": t.split()[:800]}).encode()),
            ("p%d.pdf" % i, pdf(words(i, 300))), ("d%d.docx" % i, docx(t))]


def multipart(name, data):
    b = "bench-boundary"
    body = (b"--%s\r\nContent-Disposition: form-data; name=\"contextual_core_id\"\r\n\r\nbench\r\n" % b.encode()
            + b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n\r\n" % (b.encode(), name.encode())
            + data + b"\r\n--%s--\r\n" % b.encode())
    return body, "multipart/form-data; boundary=" + b


def call(url, token, data=None, ctype=None):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("Authorization", "Bearer " + token)
    if ctype: req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def status_kib(pid, key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def main():
    tmp = tempfile.mkdtemp(); rport, hport = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, REDIS_URL="redis://127.0.0.1:%d" % rport, STRATEGIST_AUTH_SECRET="bench",
               DATABASE_URL="sqlite://%s/b.db?mode=rwc" % tmp, STRATEGIST_HTTP_ADDR="127.0.0.1:%d" % hport,
               STRATEGIST__FILES__DIR=tmp + "/files", RUST_LOG="warn",
               STRATEGIST__FILES__MAX_UPLOAD_BYTES=str(200 * 1024 * 1024))
    time.sleep(0.3)
    serve = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(tmp + "/serve.log", "w"))
    try:
        base = "http://127.0.0.1:%d" % hport
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1); break
            except Exception:
                time.sleep(0.1)
        token = subprocess.check_output([BIN, "token", "--user-id", "bench"], env=env).decode().strip()
        files = [f for i in range(N) for f in samples(i)]
        total = sum(len(d) for _, d in files)
        t0 = time.time(); ids = []
        for name, data in files:
            body, ctype = multipart(name, data)
            ids.append(call(base + "/api/v1/files", token, body, ctype)["file_id"])
        pending = set(ids); done = {}
        while pending:
            for fid in list(pending):
                v = call(base + "/api/v1/files/" + fid, token)
                if v["status"] in ("completed", "failed"):
                    done[fid] = v; pending.discard(fid)
            time.sleep(0.05)
        elapsed = time.time() - t0
        failed = [v for v in done.values() if v["status"] != "completed"]
        # Share of time per step: from each step's request to its completion.
        share = {}
        for v in done.values():
            req = {}
            for s in v["steps"]:
                if s["what"] == "requested": req[s["step"]] = s["at_ms"]
                if s["what"] == "completed" and s["step"] in req:
                    share[s["step"]] = share.get(s["step"], 0) + s["at_ms"] - req[s["step"]]
        total_ms = sum(share.values()) or 1
        print("files: %d (%d formats), %.1f MB, %d failed" % (len(files), 7, total / 1e6, len(failed)))
        print("through the whole saga: %.1f files/s, %.2f MB/s (%.1f s)" % (len(files) / elapsed, total / 1e6 / elapsed, elapsed))
        print("share of step time: " + ", ".join("%s %.0f%%" % (k, 100.0 * v / total_ms) for k, v in sorted(share.items())))
        # Peak RSS while one 100 MB text file is uploaded (and processed).
        before = status_kib(serve.pid, "VmHWM")
        big = (words(1, 200) + "\n").encode() * (100 * 1024 * 1024 // 1500)
        body, ctype = multipart("big.txt", big)
        t1 = time.time()
        fid = call(base + "/api/v1/files", token, body, ctype)["file_id"]
        up = time.time() - t1
        peak_upload = status_kib(serve.pid, "VmHWM")
        while call(base + "/api/v1/files/" + fid, token)["status"] not in ("completed", "failed"):
            time.sleep(0.5)
        print("100 MB upload: %.1f s, peak RSS %d MiB before, %d MiB after the upload, %d MiB after processing it (%s)"
              % (up, before // 1024, peak_upload // 1024, status_kib(serve.pid, "VmHWM") // 1024,
                 call(base + "/api/v1/files/" + fid, token)["status"]))
    finally:
        serve.send_signal(signal.SIGTERM); serve.wait(30); redis.kill(); shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
