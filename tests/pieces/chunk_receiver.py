"""A chunk receiver as the chunking uploaders' server-side examples write one (werkzeug).

Dropzone: a form with dzuuid, dzchunkindex, dzchunkbyteoffset, dztotalchunkcount,
dztotalfilesize and the chunk as the file part; each chunk written at its offset into
STORE/<id>.part, renamed once all its chunks arrived. resumable.js: a form with
resumableIdentifier, resumableChunkNumber, resumableTotalChunks and the chunk; each chunk kept
in a file of its own, joined in the order of their numbers once all arrived (its `GET` test of a
chunk answered 204: not there yet). A completed file is STORE/<id>, or STORE/<the file part's
name> when the uploader names it. Uploaders that send the chunk as the body and describe it in
the query (id, offset or index, count). A `PATCH` with `Content-Range: bytes first-last/length`
written into STORE/<name> (the range form some WebDAV servers take on PATCH; Apache's mod_dav
takes it on PUT only).

Usage: chunk_receiver.py PORT STORE
"""
import os
import sys
import threading

from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

STORE = sys.argv[2]
LOCK = threading.Lock()
SEEN = {}


def clean(name):
    return "".join(c for c in name if c.isalnum() or c in "-_.")


def done(part, ident, filename):
    name = clean(filename) if filename and filename != "blob" else ident
    os.rename(part, os.path.join(STORE, name))


def write(ident, offset, data, count, filename=None):
    ident = clean(ident)
    part = os.path.join(STORE, ident + ".part")
    with LOCK:
        mode = "r+b" if os.path.exists(part) else "wb"
        with open(part, mode) as f:
            f.seek(offset)
            f.write(data)
        SEEN.setdefault(ident, set()).add(offset)
        if len(SEEN[ident]) == count:
            done(part, ident, filename)


def numbered(ident, number, data, count, filename):
    ident = clean(ident)
    with LOCK:
        with open(os.path.join(STORE, f"{ident}.chunk{number}"), "wb") as f:
            f.write(data)
        chunks = [os.path.join(STORE, f"{ident}.chunk{n}") for n in range(1, count + 1)]
        if all(os.path.exists(c) for c in chunks):
            part = os.path.join(STORE, ident + ".part")
            with open(part, "wb") as out:
                for c in chunks:
                    with open(c, "rb") as f:
                        out.write(f.read())
                    os.remove(c)
            done(part, ident, filename)


@Request.application
def app(request):
    if request.method == "GET":
        return Response(status=204)
    if request.method == "PATCH":
        unit, _, rest = request.headers.get("Content-Range", "").partition(" ")
        first = int(rest.split("-")[0])
        name = clean(request.path.rsplit("/", 1)[-1])
        path = os.path.join(STORE, name)
        with LOCK:
            with open(path, "r+b" if os.path.exists(path) else "wb") as f:
                f.seek(first)
                f.write(request.get_data())
        return Response(status=204)
    if request.method != "POST":
        return Response("no", status=405)
    f = request.form
    if "dzuuid" in f:
        upload = request.files["file"]
        write(f["dzuuid"], int(f["dzchunkbyteoffset"]), upload.read(),
              int(f["dztotalchunkcount"]), upload.filename)
        return Response("ok")
    if "resumableIdentifier" in f:
        upload = request.files["file"]
        numbered(f["resumableIdentifier"], int(f["resumableChunkNumber"]), upload.read(),
                 int(f["resumableTotalChunks"]), f.get("resumableFilename"))
        return Response("ok")
    a = request.args
    if "id" in a:
        offset = int(a["offset"]) if "offset" in a else int(a["index"]) * int(a["size"])
        write(a["id"], offset, request.get_data(), int(a["count"]))
        return Response("ok")
    return Response("no chunk", status=400)


run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
