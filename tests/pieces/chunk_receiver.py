"""A chunk receiver as Dropzone's server-side examples write one (werkzeug): each chunk written
at its offset into STORE/<id>.part, renamed STORE/<id> once all its chunks arrived. Dropzone: a
form with dzuuid, dzchunkindex, dzchunkbyteoffset, dztotalchunkcount, dztotalfilesize and the
chunk as the file part. Uploaders that send the chunk as the body and describe it in the query
(id, offset, total, count). A `PATCH` with `Content-Range: bytes first-last/length` written into
STORE/<name> (the range form some WebDAV servers take on PATCH; Apache's mod_dav takes it on PUT
only).

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


def write(ident, offset, data, count):
    ident = "".join(c for c in ident if c.isalnum() or c in "-_")
    part = os.path.join(STORE, ident + ".part")
    with LOCK:
        mode = "r+b" if os.path.exists(part) else "wb"
        with open(part, mode) as f:
            f.seek(offset)
            f.write(data)
        SEEN.setdefault(ident, set()).add(offset)
        if len(SEEN[ident]) == count:
            os.rename(part, os.path.join(STORE, ident))


@Request.application
def app(request):
    if request.method == "PATCH":
        unit, _, rest = request.headers.get("Content-Range", "").partition(" ")
        first = int(rest.split("-")[0])
        name = "".join(c for c in request.path.rsplit("/", 1)[-1] if c.isalnum() or c in "-_.")
        path = os.path.join(STORE, name)
        with LOCK:
            with open(path, "r+b" if os.path.exists(path) else "wb") as f:
                f.seek(first)
                f.write(request.get_data())
        return Response(status=204)
    if request.method != "POST":
        return Response("no", status=405)
    if "dzuuid" in request.form:
        f = request.form
        write(f["dzuuid"], int(f["dzchunkbyteoffset"]), request.files["file"].read(),
              int(f["dztotalchunkcount"]))
        return Response("ok")
    a = request.args
    if "id" in a:
        write(a["id"], int(a["offset"]), request.get_data(), int(a["count"]))
        return Response("ok")
    return Response("no chunk", status=400)


run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
