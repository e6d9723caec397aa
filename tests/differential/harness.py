"""The differential suite: request shapes that real backend parsers read, sent through nginx
with the module in front of c-icap + ClamAV, and judged by what the parsers extract from what
reached the backend.

For every case (a mutation of one class, with an infected payload) and its benign twin (the
same shape, a clean payload):

- the harness sends the request to nginx and records what the backend received (a recording
  backend of its own);
- every parser (PHP's $_FILES/$_POST/json_decode through php-cgi, werkzeug, Django,
  python-multipart, Python's json and urllib.parse, busboy, formidable, body-parser) reads
  what the backend received, and every item it extracts is written to a file;
- ClamAV (clamscan, with the test signature database) scans every item alone.

An attack case passes when the module refused it (400/413), blocked it (403), or forwarded it
and no item any parser extracted is flagged. A benign twin passes when it reached the backend
byte for byte; a refused twin is listed, and fails the run unless its refusal is one the README
justifies (JUSTIFIED below). The same parsers also read each attack as the client sent it: a
case from which no parser extracts a flagged item is inert (it proves nothing) and is listed.

Usage: harness.py --nginx PORT --backend PORT --clamdb DIR --work DIR --php PHP_CGI
                  --node NODE --node-modules DIR --deps DIR
"""

import argparse
import base64
import gzip
import io
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import more  # noqa: E402
import nested_cases  # noqa: E402

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
# The benign twin's payload: same length, plain text.
BENIGN = b"This is the clean twin of a test payload: plain text, nothing to find."[: len(EICAR)]
HERE = os.path.dirname(os.path.abspath(__file__))

# Benign twins whose refusal is part of the design (README, "Security model").
JUSTIFIED = {
    "m_big_part_header": "a part header block over 16 KiB (413): no client sends one",
    "m_lf_delimiter_in_crlf_data": "CRLF and bare-LF delimiters in one form: parsers split it differently (400)",
    "m_midline_delimiter": "the boundary inside a line: Django splits there, others do not (400)",
    "m_xboundary": "two boundary parameters read differently by PHP/formidable and the rest (400)",
    "m_boundary_star": "boundary and boundary* differ (400)",
    "m_boundary_comma": "PHP cuts the boundary at ',', others do not (400)",
    "m_bare_lf_blank_in_crlf_header": "a bare-LF blank line in a CRLF header block (400)",
    "h_two_content_types": "two request Content-Type headers that differ (400)",
    "m_delimiter_after_close": "the boundary again after the closing delimiter (400)",
    "m_quoted_boundary_semicolon": "Rack stops a boundary at ';' even inside quotes (400)",
    "m_boundary_rack_semicolon": "Rack stops a boundary at ';' even inside quotes (400)",
    "m_boundary_rack_comma": "Rack stops a boundary at ',' even inside quotes (400)",
    "m_boundary_werkzeug_slash": "werkzeug stops an unquoted boundary at '/' (400)",
    "m_boundary_werkzeug_equals": "werkzeug stops an unquoted boundary at '=' (400)",
    "m_boundary_continuation": "RFC 2231 continuations of the boundary: Go and Django assemble them (400)",
}


def gz(data):
    return gzip.compress(data, mtime=0)


def b64(data):
    return base64.b64encode(data)


# ---------------------------------------------------------------------------------------------
# The cases: each a function of the payload returning (headers, body). Headers are a list of
# (name, value) pairs (duplicates kept); Content-Length and Host are added when sent.

B = b"----ometascanDiff7MA4YWxkTrZu0gW"


def part(headers, data, eol=b"\r\n"):
    return b"".join(h + eol for h in headers) + eol + data


def form(parts, boundary=B, eol=b"\r\n", preamble=b"", epilogue=b"", close=True):
    out = preamble
    for p in parts:
        out += b"--" + boundary + eol + p + eol
    if close:
        out += b"--" + boundary + b"--" + eol + epilogue
    else:
        out = out[: -len(eol)]
    return out


def mp(boundary=B):
    return [("Content-Type", "multipart/form-data; boundary=" + boundary.decode())]


CD_FILE = b'Content-Disposition: form-data; name="file"; filename="x.gz"'
CT_GZ = b"Content-Type: application/gzip"
CD_TITLE = b'Content-Disposition: form-data; name="title"'


def file_part(p, eol=b"\r\n"):
    return part([CD_FILE, CT_GZ], gz(p), eol)


def title(eol=b"\r\n"):
    return part([CD_TITLE], b"hello", eol)


CASES = {}


def case(f):
    CASES[f.__name__] = f
    return f


# Class 1: forms that do not split cleanly.
@case
def m_plain(p):
    return mp(), form([title(), file_part(p)])


@case
def m_preamble(p):
    return mp(), form([title(), file_part(p)], preamble=b"This is a preamble.\r\n")


@case
def m_epilogue(p):
    return mp(), form([file_part(p)], epilogue=b"This is an epilogue.\r\n")


@case
def m_payload_in_preamble(p):
    return mp(), form([title()], preamble=gz(p) + b"\r\n")


@case
def m_payload_in_epilogue(p):
    return mp(), form([title()], epilogue=gz(p))


@case
def m_part_typed_multipart_mixed(p):
    return mp(), form([part([CD_FILE, b"Content-Type: multipart/mixed"], gz(p))])


@case
def m_lf_only(p):
    return mp(), form([title(b"\n"), file_part(p, b"\n")], eol=b"\n")


@case
def m_long_boundary(p):
    b = b"b" * 100
    return mp(b), form([title(), file_part(p)], boundary=b)


@case
def m_odd_boundary(p):
    b = b"~#!%odd-boundary"
    return mp(b), form([file_part(p)], boundary=b)


@case
def m_quoted_boundary_semicolon(p):
    b = b"abc;def"
    return [("Content-Type", 'multipart/form-data; boundary="abc;def"')], form(
        [file_part(p)], boundary=b
    )


@case
def m_folded_header(p):
    cd = b'Content-Disposition: form-data;\r\n name="file"; filename="x.gz"'
    return mp(), form([part([cd, CT_GZ], gz(p))])


@case
def m_big_part_header(p):
    return mp(), form([part([CD_FILE, b"X-Pad: " + b"a" * (17 * 1024)], gz(p))])


@case
def m_1001_parts(p):
    fields = [part([b'Content-Disposition: form-data; name="f%d"' % i], b"v") for i in range(1000)]
    return mp(), form(fields + [file_part(p)])


@case
def m_uuencode(p):
    return mp(), form([part([CD_FILE, b"Content-Transfer-Encoding: x-uuencode"], gz(p))])


@case
def m_no_closing_delimiter(p):
    return mp(), form([title(), file_part(p)], close=False)


@case
def m_transport_padding(p):
    body = form([file_part(p)]).replace(B + b"\r\n", B + b"   \t\r\n", 1)
    return mp(), body


@case
def m_nested_multipart(p):
    inner = form([file_part(p)], boundary=b"inner")
    return mp(), form([part([b'Content-Disposition: form-data; name="m"',
                             b"Content-Type: multipart/mixed; boundary=inner"], inner)])


# Class 2: the module and a backend split the same form differently.
@case
def m_lf_delimiter_in_crlf_data(p):
    hidden = b"\n--" + B + b"\r\n" + CD_FILE + b"\r\n" + CT_GZ + b"\r\n\r\n" + gz(p)
    return mp(), form([part([b'Content-Disposition: form-data; name="a"'], b"x" + hidden)])


@case
def m_midline_delimiter(p):
    hidden = b"x--" + B + b"\r\n" + CD_FILE + b"\r\n\r\n" + gz(p)
    return mp(), form([part([b'Content-Disposition: form-data; name="a"'], hidden)])


@case
def m_xboundary(p):
    k, m = b"KKKKboundary", b"MMMMboundary"
    ct = "multipart/form-data; xboundary=%s; boundary=%s" % (k.decode(), m.decode())
    return [("Content-Type", ct)], form([file_part(p)], boundary=k)


@case
def m_boundary_star(p):
    k, m = b"KKKKboundary", b"MMMMboundary"
    ct = "multipart/form-data; boundary=%s; boundary*=utf-8''%s" % (m.decode(), k.decode())
    return [("Content-Type", ct)], form([file_part(p)], boundary=k)


@case
def m_boundary_comma(p):
    k = b"KKKKboundary"
    ct = "multipart/form-data; boundary=%s,MMMM" % k.decode()
    return [("Content-Type", ct)], form([file_part(p)], boundary=k)


def two_readings(p, ct, full, short):
    """A form delimited for the parsers that read `full` (a benign file) and, inside it, for
    those that read `short` (the payload)."""
    hidden = form([file_part(p)], boundary=short)
    return [("Content-Type", ct)], form([part([b'Content-Disposition: form-data; name="a"; filename="a.txt"'],
                                             b"x\r\n" + hidden)], boundary=full)


@case
def m_boundary_rack_semicolon(p):
    return two_readings(p, 'multipart/form-data; boundary="KKKK;MMMM"', b"KKKK;MMMM", b"KKKK")


@case
def m_boundary_rack_comma(p):
    return two_readings(p, 'multipart/form-data; boundary="KKKK,MMMM"', b"KKKK,MMMM", b"KKKK")


@case
def m_boundary_werkzeug_slash(p):
    return two_readings(p, "multipart/form-data; boundary=KKKK/MMMM", b"KKKK/MMMM", b"KKKK")


@case
def m_boundary_werkzeug_equals(p):
    return two_readings(p, "multipart/form-data; boundary=KKKK=MMMM", b"KKKK=MMMM", b"KKKK")


@case
def m_boundary_continuation(p):
    ct = "multipart/form-data; boundary=KKKKMMMM; boundary*0=KKKK; boundary*1=XXXX"
    return two_readings(p, ct, b"KKKKMMMM", b"KKKKXXXX")


@case
def m_delimiter_after_close(p):
    body = form([title()]) + b"--" + B + b"\r\n" + file_part(p) + b"\r\n--" + B + b"--\r\n"
    return mp(), body


@case
def m_bare_lf_blank_in_crlf_header(p):
    return mp(), form([part([CD_FILE + b"\r\nX-A: 1\n"], gz(p))])


# Class 3: parts read as plain fields, hidden file names.
@case
def m_field_without_filename(p):
    return mp(), form([part([b'Content-Disposition: form-data; name="file"'], gz(p))])


@case
def m_name_with_quote_trick(p):
    cd = b'Content-Disposition: form-data; name="x;\\"; filename=\\"x.gz"'
    return mp(), form([part([cd], gz(p))])


@case
def m_filename_without_equals(p):
    cd = b'Content-Disposition: form-data; name="file"; filename'
    return mp(), form([part([cd, CT_GZ], gz(p))])


@case
def m_two_dispositions(p):
    return mp(), form([part([b'Content-Disposition: form-data; name="a"', CD_FILE], gz(p))])


@case
def m_two_part_types(p):
    return mp(), form([part([CD_FILE, b"Content-Type: text/plain", CT_GZ], gz(p))])


@case
def m_unbalanced_quote(p):
    cd = b'Content-Disposition: form-data; name="file; filename="x.gz"'
    return mp(), form([part([cd], gz(p))])


@case
def m_text_field_payload(p):
    return mp(), form([part([b'Content-Disposition: form-data; name="note"'], b"see: " + p)])


# Class 4: JSON.
def jdump(obj, **kw):
    return json.dumps(obj, **kw).encode()


JSON = [("Content-Type", "application/json")]


@case
def j_escaped_string(p):
    return JSON, jdump({"content": p.decode("latin1")})


@case
def j_no_type(p):
    return [("Content-Type", "text/plain")], jdump({"content": p.decode("latin1")})


@case
def j_form_type(p):
    return [("Content-Type", "application/x-www-form-urlencoded")], jdump({"content": p.decode("latin1")})


@case
def j_leading_white_space(p):
    return [("Content-Type", "text/plain")], b" \r\n" * 100 + jdump({"content": p.decode("latin1")})


@case
def j_multiline_script(p):
    return JSON, jdump({"script": "line one\n" + p.decode("latin1") + "\nline three"})


@case
def j_unicode_escapes(p):
    s = "".join("\\u%04x" % c for c in p)
    return JSON, ('{"c": "%s"}' % s).encode()


@case
def j_utf16(p):
    return JSON, jdump({"content": p.decode("latin1")}).decode().encode("utf-16-le")


@case
def j_utf16_bom(p):
    return JSON, jdump({"content": p.decode("latin1")}).decode().encode("utf-16")


@case
def j_utf32(p):
    return JSON, jdump({"content": p.decode("latin1")}).decode().encode("utf-32-be")


@case
def j_base64_gz(p):
    return JSON, jdump({"name": "x.gz", "data": b64(gz(p)).decode()})


@case
def j_base64url_nopad(p):
    return JSON, jdump({"data": base64.urlsafe_b64encode(gz(p)).decode().rstrip("=")})


@case
def j_data_url(p):
    return JSON, jdump({"data": "data:application/gzip;base64," + b64(gz(p)).decode()})


@case
def j_base64_lines(p):
    s = b64(gz(p)).decode()
    return JSON, jdump({"data": "\n".join(s[i:i + 20] for i in range(0, len(s), 20))})


@case
def j_seventeen_decoys(p):
    decoys = {"d%d" % i: b64(b"decoy %d " % i * 20).decode() for i in range(17)}
    decoys["data"] = b64(gz(p)).decode()
    return JSON, jdump(decoys)


@case
def j_base64_padding_inside_php(p):
    s = b64(gz(p)).decode()
    return JSON, jdump({"data": s[:3] + "=" + s[3:]})


@case
def j_base64_padding_inside_python(p):
    return JSON, jdump({"data": "QUJD=" + b64(p).decode()})


@case
def u_base64_padding_inside_php(p):
    s = b64(gz(p)).decode()
    return FORM, b"file=" + q((s[:7] + "=" + s[7:]).encode())


@case
def m_cte_base64_with_junk(p):
    s = b64(gz(p))
    junk = b"!".join(s[i:i + 10] for i in range(0, len(s), 10))
    return mp(), form([part([CD_FILE, b"Content-Transfer-Encoding: base64"], junk)])


@case
def j_long_string(p):
    return JSON, jdump({"doc": "x" * 5000 + p.decode("latin1")})


# Class 5: decoding stops at a limit or a spelling.
FORM = [("Content-Type", "application/x-www-form-urlencoded")]


def q(b):
    return urllib.parse.quote_from_bytes(b, safe="").encode()


@case
def u_percent_encoded_gz(p):
    return FORM, b"a=1&file=" + q(gz(p))


@case
def u_seventeen_long_values(p):
    vals = b"&".join(b"v%d=" % i + q(b"decoy value %d " % i * 10) for i in range(17))
    return FORM, vals + b"&file=" + q(gz(p))


@case
def u_raw_non_ascii(p):
    return FORM, "city=Montréal&note=".encode() + q(p)


@case
def u_tab_and_newline(p):
    return FORM, b"a=b\tc&note=" + q(p) + b"\n"


@case
def u_base64_value(p):
    return FORM, b"file=" + q(b64(gz(p)))


@case
def u_raw_binary_value(p):
    return FORM, b"file=" + gz(p).replace(b"&", b"%26").replace(b"%", b"%25").replace(b"+", b"%2B")


@case
def m_text_part_base64(p):
    return mp(), form([part([b'Content-Disposition: form-data; name="data"'], b64(gz(p)))])


@case
def m_cte_base64(p):
    return mp(), form([part([CD_FILE, b"Content-Transfer-Encoding: base64"], b64(gz(p)))])


@case
def m_cte_base64_with_params(p):
    return mp(), form([part([CD_FILE, b"Content-Transfer-Encoding: base64; x=y"], b64(gz(p)))])


@case
def m_two_ctes(p):
    return mp(), form([part([CD_FILE, b"Content-Transfer-Encoding: 8bit",
                             b"Content-Transfer-Encoding: base64"], b64(gz(p)))])


@case
def m_quoted_printable(p):
    qp = b"".join(b"=%02X" % c for c in gz(p))
    return mp(), form([part([CD_FILE, b"Content-Transfer-Encoding: quoted-printable"], qp)])


# Class 6: request headers read differently.
@case
def h_two_content_types(p):
    return [("Content-Type", "text/plain")] + mp(), form([file_part(p)])


# Class 7: Content-Encoding lists.
@case
def ce_gzip_gzip(p):
    return [("Content-Type", "application/json"), ("Content-Encoding", "gzip, gzip")], gz(gz(jdump({"c": p.decode("latin1")})))


@case
def ce_identity_gzip(p):
    return [("Content-Type", "application/octet-stream"), ("Content-Encoding", "identity, gzip")], gz(p)


@case
def ce_x_gzip(p):
    return [("Content-Type", "application/octet-stream"), ("Content-Encoding", "x-gzip")], gz(p)


@case
def ce_two_headers(p):
    return [("Content-Type", "application/octet-stream"), ("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")], gz(gz(p))


# ---------------------------------------------------------------------------------------------
# Generated cases: the operators above combined at random (seeded: the same seed, the same
# cases). Each generated shape is one that every parser reads the same way, so its benign twin
# must pass; its attack must be blocked.

import random

# Unquoted, a ',' is where PHP cuts a boundary (refused, see m_boundary_comma): only quoted.
# Boundaries parsers read one way; those that some read another way (Rack stops at `;` `,` `"`
# even in quotes, werkzeug an unquoted value at `/` `=` `(` `:` ...) are cases of their own.
ODD_BOUNDARIES = [b"plain-boundary-1234", b"b" * 150, b"~#!%'()+_-./:=?x", b"with space",
                  b"==============1234==", b"a-b_c.d'e"]


def gen_multipart(rng):
    eol = rng.choice([b"\r\n", b"\n"])
    boundary = rng.choice(ODD_BOUNDARIES)
    quoted = boundary in (b"with space", b"~#!%'()+_-./:=?x", b"==============1234==") or rng.random() < 0.3
    ct = "multipart/form-data; boundary=" + ('"%s"' % boundary.decode() if quoted else boundary.decode())
    preamble = rng.choice([b"", b"a preamble" + eol])
    epilogue = rng.choice([b"", b"an epilogue" + eol])
    padding = rng.choice([b"", b"  \t"])
    decoys = rng.randrange(0, 12)
    position = rng.randrange(0, decoys + 1)
    disposition = rng.choice([
        b'Content-Disposition: form-data; name="file"; filename="x.gz"',
        b'Content-Disposition: form-data; name="file"',
        b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''x%20y.gz",
        b'Content-Disposition: form-data; name="file"; filename',
        b'content-disposition: FORM-DATA; NAME=file; FILENAME=x.gz',
    ])
    types = rng.choice([[], [CT_GZ], [b"Content-Type: text/plain"], [b"Content-Type: multipart/mixed"],
                        [b"Content-Type: text/plain", CT_GZ]])
    encoding = rng.choice(["raw", "cte-base64", "cte-base64-params", "cte-qp", "text-base64",
                           "data-url", "uuencode-raw", "text"])
    fold = rng.random() < 0.2
    close = rng.random() < 0.85

    def make(p):
        data, extra = gz(p), []
        if encoding == "cte-base64":
            data, extra = b64(gz(p)), [b"Content-Transfer-Encoding: base64"]
        elif encoding == "cte-base64-params":
            data, extra = b64(gz(p)), [b"Content-Transfer-Encoding: Base64; x=y"]
        elif encoding == "cte-qp":
            data, extra = b"".join(b"=%02X" % c for c in gz(p)), [b"Content-Transfer-Encoding: quoted-printable"]
        elif encoding == "text-base64":
            data = b64(gz(p))
        elif encoding == "data-url":
            data = b"data:application/gzip;base64," + b64(gz(p))
        elif encoding == "uuencode-raw":
            extra = [b"Content-Transfer-Encoding: x-uuencode"]
        elif encoding == "text":
            data = b"note: " + p
        cd = disposition.replace(b"; name", b";" + eol + b" name") if fold else disposition
        payload = part([cd] + types + extra, data, eol)
        parts = []
        drng = random.Random(decoys * 7919 + position)
        for i in range(decoys):
            kind = drng.randrange(3)
            body = [b"decoy text %d" % i, drng.randbytes(drng.randrange(1, 300)).replace(boundary, b""),
                    b64(b"decoy %d " % i * 12)][kind]
            parts.append(part([b'Content-Disposition: form-data; name="d%d"' % i], body, eol))
        parts.insert(position, payload)
        body = form(parts, boundary=boundary, eol=eol, preamble=preamble, epilogue=epilogue, close=close)
        if padding:
            body = body.replace(b"--" + boundary + eol, b"--" + boundary + padding + eol)
        return [("Content-Type", ct)], body
    return make


def gen_json(rng):
    enc = rng.choice(["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32-be", "utf-32"])
    spelling = rng.choice(["escaped", "unicode", "base64", "base64url", "data-url", "wrapped", "slashes"])
    depth = rng.randrange(0, 40)
    decoys = rng.randrange(0, 25)
    lead = rng.choice(["", "   ", "\r\n" * 50])
    ctype = rng.choice(["application/json", "application/vnd.api+json", "text/plain", None,
                        "application/x-www-form-urlencoded"])

    def make(p):
        if spelling == "escaped":
            value = p.decode("latin1")
        elif spelling == "unicode":
            value = None
        elif spelling == "base64":
            value = b64(gz(p)).decode()
        elif spelling == "base64url":
            value = base64.urlsafe_b64encode(gz(p)).decode().rstrip("=")
        elif spelling == "data-url":
            value = "data:application/gzip;base64," + b64(gz(p)).decode()
        elif spelling == "wrapped":
            t = b64(gz(p)).decode()
            value = "\r\n".join(t[i:i + 76] for i in range(0, len(t), 76))
        else:
            value = b64(gz(p)).decode()
        obj = {"d%d" % i: b64(b"decoy %d " % i * 15).decode() for i in range(decoys)}
        obj["payload"] = value if value is not None else "@@U@@"
        for _ in range(depth):
            obj = {"nested": [obj]}
        text = json.dumps(obj, ensure_ascii=rng_ascii)
        if value is None:
            text = text.replace('"@@U@@"', '"%s"' % "".join("\\u%04x" % c for c in p))
        if spelling == "slashes":
            text = text.replace("/", "\\/")
        headers = [("Content-Type", ctype)] if ctype else []
        return headers, (lead + text).encode(enc)
    rng_ascii = rng.random() < 0.5
    return make


def gen_urlencoded(rng):
    spelling = rng.choice(["percent-all", "percent-minimal", "base64", "base64-plus-raw", "raw-text"])
    decoys = rng.randrange(0, 40)
    position = rng.randrange(0, decoys + 1)
    extra = rng.choice([b"", "city=Montréal".encode(), b"t=a\tb", b"x=%ZZ%2"])
    trailing = rng.choice([b"", b"\n", b"&"])

    def make(p):
        if spelling == "percent-all":
            v = b"".join(b"%%%02X" % c for c in gz(p))
        elif spelling == "percent-minimal":
            v = q(gz(p))
        elif spelling == "base64":
            v = q(b64(gz(p)))
        elif spelling == "base64-plus-raw":
            v = b64(gz(p)).replace(b"=", b"%3D").replace(b"/", b"%2F")
        else:
            v = q(p)
        fields = [b"d%d=" % i + q(b"decoy value %d" % i) for i in range(decoys)]
        fields.insert(position, b"payload=" + v)
        if extra:
            fields.append(extra)
        return FORM, b"&".join(fields) + trailing
    return make


def generated(seed, counts=(30, 20, 15)):
    rng = random.Random(seed)
    out = {}
    for kind, gen, n in (("mp", gen_multipart, counts[0]), ("json", gen_json, counts[1]),
                         ("url", gen_urlencoded, counts[2])):
        for i in range(n):
            out["gen_%s_%02d" % (kind, i)] = gen(random.Random(rng.random()))
    return out


# ---------------------------------------------------------------------------------------------
# The recording backend.

RECEIVED = {}


class Backend(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


PAGES = {}


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        self.request.settimeout(30)
        while b"\r\n\r\n" not in data:
            c = self.request.recv(65536)
            if not c:
                return
            data += c
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if parts[0] == b"GET":
            page = PAGES.get(parts[1].decode("latin1"), "").encode()
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                                 b"Connection: close\r\n\r\n" % len(page) + page)
            return
        headers = []
        for line in lines[1:]:
            n, _, v = line.partition(b":")
            headers.append((n.strip().decode("latin1"), v.strip().decode("latin1")))
        length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
        while len(rest) < length:
            c = self.request.recv(1 << 20)
            if not c:
                break
            rest += c
        key = next((v for n, v in headers if n.lower() == "x-case"), "")
        target = lines[0].split(b" ")[1].decode("latin1") if len(lines[0].split(b" ")) > 1 else ""
        if target.startswith("/capture/"):
            key = "capture:" + target[len("/capture/"):]
        if any(n.lower() == "transfer-encoding" for n, _ in headers):
            rest = dechunk(self.request, rest)
            length = len(rest)
        RECEIVED[key] = (headers, rest[:length])
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def dechunk(sock, data):
    """A chunked body read whole (for clients that send one)."""
    out = b""
    while True:
        while b"\r\n" not in data:
            data += sock.recv(65536)
        line, data = data.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        while len(data) < size + 2:
            data += sock.recv(65536)
        out += data[:size]
        data = data[size + 2:]
        if size == 0:
            return out


def send(port, key, headers, body):
    head = "POST /upload HTTP/1.1\r\nHost: localhost\r\nX-Case: %s\r\nConnection: close\r\n" % key
    head += "".join("%s: %s\r\n" % (n, v) for n, v in headers)
    head += "Content-Length: %d\r\n\r\n" % len(body)
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(head.encode("latin1") + body)
    resp = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        resp += c
    s.close()
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/") else 0


# ---------------------------------------------------------------------------------------------
# The parsers.

def first(headers, name):
    return next((v for n, v in headers if n.lower() == name), "")


def last(headers, name):
    vals = [v for n, v in headers if n.lower() == name]
    return vals[-1] if vals else ""


def py_strings(v, into):
    if isinstance(v, str):
        into.append(v.encode("utf-8", "surrogatepass"))
    elif isinstance(v, list):
        for x in v:
            py_strings(x, into)
    elif isinstance(v, dict):
        for k, x in v.items():
            into.append(k.encode("utf-8", "surrogatepass"))
            py_strings(x, into)


def p_werkzeug(headers, body):
    from werkzeug.formparser import parse_form_data
    env = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": last(headers, "content-type"),
           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    _, form_, files = parse_form_data(env, silent=True)
    items = []
    for k, vs in form_.lists():
        items.append(k.encode())
        items.extend(v.encode("utf-8", "surrogateescape") for v in vs)
    for _, f in files.items(multi=True):
        items.append(f.read())
    return items


DJANGO_READY = False


def p_django(headers, body):
    global DJANGO_READY
    import django
    from django.conf import settings
    if not DJANGO_READY:
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], FILE_UPLOAD_MAX_MEMORY_SIZE=1 << 30)
        django.setup()
        DJANGO_READY = True
    from django.core.handlers.wsgi import WSGIRequest
    env = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": last(headers, "content-type"),
           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "PATH_INFO": "/",
           "SERVER_NAME": "localhost", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    req = WSGIRequest(env)
    items = []
    raw = req.body
    try:
        for k, vs in req.POST.lists():
            items.append(k.encode())
            items.extend(v.encode("utf-8", "surrogateescape") for v in vs)
        for _, fs in req.FILES.lists():
            items.extend(f.read() for f in fs)
    except Exception:
        pass
    try:
        py_strings(json.loads(raw), items)
    except Exception:
        pass
    return items


def p_python_multipart(headers, body):
    from python_multipart import parse_form
    items = []

    def on_field(f):
        items.append(f.field_name or b"")
        items.append(f.value or b"")

    def on_file(f):
        fo = f.file_object
        fo.seek(0)
        items.append(fo.read())

    parse_form({"Content-Type": first(headers, "content-type").encode(),
                "Content-Length": str(len(body)).encode()}, io.BytesIO(body), on_field, on_file)
    return items


def p_json(headers, body):
    items = []
    py_strings(json.loads(body), items)
    return items


def p_urllib(headers, body):
    if not first(headers, "content-type").lower().startswith("application/x-www-form-urlencoded"):
        return []
    items = []
    for k, v in urllib.parse.parse_qsl(body, keep_blank_values=True):
        items += [k, v]
    return items


PYTHON = [("werkzeug", p_werkzeug), ("django", p_django), ("python-multipart", p_python_multipart),
          ("json", p_json), ("urllib", p_urllib)]


def p_php(args, headers, body):
    env = {"REDIRECT_STATUS": "1", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
           "SCRIPT_FILENAME": os.path.join(HERE, "parse.php"), "CONTENT_TYPE": first(headers, "content-type"),
           "CONTENT_LENGTH": str(len(body)), "PATH": os.environ.get("PATH", "")}
    r = subprocess.run([args.php, "-q", "-d", "upload_max_filesize=100M", "-d", "post_max_size=100M",
                        "-d", "display_errors=0", "-d", "upload_tmp_dir=" + args.work],
                       input=body, env=env, capture_output=True, timeout=60)
    stdout = r.stdout
    if b"\r\n\r\n" in stdout[:512]:
        stdout = stdout.split(b"\r\n\r\n", 1)[1]
    try:
        out = json.loads(stdout)
    except Exception:
        return []
    return [base64.b64decode(x) for k in ("files", "post", "json") for x in out.get(k, [])]


B64CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")


def app_decoded(item):
    """What an application gets from a base64 value when it decodes it (either alphabet, a
    data: URL prefix stripped, white space skipped, padding added): Python's b64decode, and
    PHP's base64_decode, which skips every '=' inside the data."""
    t = item.strip()
    if t[:5].lower() == b"data:" and b"," in t[:300]:
        t = t.split(b",", 1)[1]
    t = b"".join(t.split()).replace(b"-", b"+").replace(b"_", b"/")
    if len(t) < 16 or not set(t) <= B64CHARS:
        return []
    out = []
    try:
        out.append(base64.b64decode(t + b"=" * (-len(t) % 4)))
    except Exception:
        pass
    php = t.replace(b"=", b"")
    try:
        out.append(base64.b64decode(php + b"=" * (-len(php) % 4)))
    except Exception:
        pass
    return out


def app_readings(items, depth=0):
    """Everything an application gets when it reads the items a parser handed over once more,
    as it would a body: base64 decoded (see app_decoded), JSON parsed (its strings), a query
    string split (its names and values), XML parsed (its text and attribute values), each
    result read again, 9 levels deep."""
    out = []
    if depth >= 9:
        return out
    for item in items:
        found = [d for d in app_decoded(item) if d]
        t = item.strip()
        if t[:1] in (b"{", b"[", b'"') or t[:2] in (b"\xff\xfe", b"\xfe\xff"):
            try:
                py_strings(json.loads(item), found)
            except Exception:
                pass
        if b"=" in t and b"%" in t and b" " not in t:
            try:
                for k, v in urllib.parse.parse_qsl(item, keep_blank_values=True):
                    found += [k, v]
            except Exception:
                pass
        if t.lstrip(b"\xef\xbb\xbf")[:1] == b"<" or t[:2] in (b"\xff\xfe", b"\xfe\xff"):
            found += xml_values(item)
        found = [f for f in found if f and f != item]
        out += found
        out += app_readings(found, depth + 1)
    return out


def xml_values(doc):
    """Element text (all of it, as DOM's getTextContent) and attribute values (ElementTree
    expands internal entities, as the JDK's DOM does)."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(doc)
    except Exception:
        return []
    out = []
    for el in root.iter():
        out.append("".join(el.itertext()).encode("utf-8", "surrogatepass"))
        out += [v.encode("utf-8", "surrogatepass") for v in el.attrib.values()]
    return out


def content_decoded(headers, body):
    """The body decoded from its Content-Encoding list, as a decoding server hands it on."""
    codings = [c.strip().lower() for n, v in headers if n.lower() == "content-encoding"
               for c in v.split(",")]
    for c in reversed(codings):
        if c in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        elif c in ("", "identity"):
            continue
        else:
            return None
    return body


def parse_all(args, root, requests):
    """Every item every parser extracts from each request: {key: {parser: [bytes]}}."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    out = {}
    for key, (headers, body) in requests.items():
        d = os.path.join(root, key)
        os.makedirs(d)
        hs = {}
        for n, v in headers:
            hs.setdefault(n.lower(), v)
        with open(os.path.join(d, "headers.json"), "w") as f:
            json.dump(hs, f)
        with open(os.path.join(d, "body"), "wb") as f:
            f.write(body)
        res = {"raw": [body]}
        for name, fn in PYTHON:
            try:
                res[name] = fn(headers, body)
            except Exception:
                res[name] = []
        res["php"] = p_php(args, headers, body)
        out[key] = res
    # A body with a Content-Encoding is read a second time decoded.
    for key, (headers, body) in list(requests.items()):
        try:
            decoded = content_decoded(headers, body)
        except Exception:
            decoded = None
        if decoded is not None and decoded != body:
            hs = [(n, v) for n, v in headers if n.lower() != "content-encoding"]
            res = {"raw": [decoded]}
            for name, fn in PYTHON:
                try:
                    res[name] = fn(hs, decoded)
                except Exception:
                    res[name] = []
            res["php"] = p_php(args, hs, decoded)
            for parser, items in res.items():
                out[key][parser + "(decoded)"] = items
    env = dict(os.environ, NODE_PATH=args.node_modules)
    r = subprocess.run([args.node, os.path.join(HERE, "parse.js"), root], capture_output=True,
                       env=env, timeout=600)
    if r.returncode != 0:
        sys.exit("node parsers failed: " + r.stderr.decode(errors="replace")[-2000:])
    for key, res in json.loads(r.stdout).items():
        for parser, items in res.items():
            out[key][parser] = [base64.b64decode(x) for x in items]
    for key, res in more.run(root, args.deps, args.node).items():
        out[key].update(res)
    # Applications decode what they take for a file or a document again: base64 values, JSON
    # in a form field or a string, query strings, XML.
    for res in out.values():
        for parser in list(res):
            derived = app_readings(res[parser])
            if derived:
                res[parser + "+app"] = derived
    return out


def flagged(args, root, parsed):
    """{key: set(parsers)} whose items ClamAV flags, each item scanned alone."""
    items_dir = os.path.join(root, "_items")
    index = {}
    for key, res in parsed.items():
        for parser, items in res.items():
            for i, item in enumerate(items):
                if not item:
                    continue
                path = os.path.join(items_dir, key, "%s-%d" % (parser, i))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(item)
                index[path] = (key, parser)
    if not index:
        return {}
    r = subprocess.run(["clamscan", "--no-summary", "--infected", "-r", "-d", args.clamdb, items_dir],
                       capture_output=True, timeout=600)
    if r.returncode not in (0, 1):
        sys.exit("clamscan failed: " + r.stderr.decode(errors="replace"))
    out = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        if line.endswith(" FOUND"):
            path = line.split(": ", 1)[0]
            if path in index:
                key, parser = index[path]
                out.setdefault(key, set()).add(parser)
    return out


# ---------------------------------------------------------------------------------------------
# Real clients: what curl, Python's requests and Node's fetch send, captured and replayed.

def client_requests(args, work, capture):
    """Each client's request for a clean and an infected payload: {name.twin: (headers, body)}."""
    import requests
    url = "http://127.0.0.1:%d/capture/" % capture
    out = {}
    for twin, p in (("attack", EICAR), ("benign", BENIGN)):
        d = os.path.join(work, "client-" + twin)
        os.makedirs(d, exist_ok=True)
        files = {"x.gz": gz(p), "x.txt": p, "x.json": jdump({"content": p.decode("latin1")})}
        for n, data in files.items():
            with open(os.path.join(d, n), "wb") as f:
                f.write(data)
        f = lambda n: os.path.join(d, n)
        curl = {
            "curl_F_file_and_field": ["-F", "title=hello", "-F", "file=@" + f("x.gz")],
            "curl_F_typed_multipart_mixed": ["-F", "file=@%s;type=multipart/mixed" % f("x.gz")],
            "curl_F_field_from_file": ["-F", "file=<" + f("x.gz")],
            "curl_data_urlencode_file": ["--data-urlencode", "note@" + f("x.txt")],
            "curl_d_form": ["-d", "a=1", "-d", "note=" + p.decode("latin1")],
            "curl_json": ["-H", "Content-Type: application/json", "--data-binary", "@" + f("x.json")],
            "curl_data_binary_unlabelled": ["--data-binary", "@" + f("x.gz")],
            "curl_data_binary_typed": ["-H", "Content-Type: application/gzip", "--data-binary", "@" + f("x.gz")],
            "curl_T_put": ["-T", f("x.gz"), "-H", "Expect:"],
        }
        for name, a in curl.items():
            key = "%s.%s" % (name, twin)
            subprocess.run(["curl", "-s", "-o", "/dev/null"] + a + [url + key], check=True, timeout=60)
            out[key] = key
        for name, kw in {
            "requests_files": {"files": {"file": ("x.gz", gz(p))}, "data": {"title": "hello"}},
            "requests_form": {"data": {"note": p.decode("latin1"), "a": "1"}},
            "requests_json": {"json": {"content": p.decode("latin1"), "file": b64(gz(p)).decode()}},
        }.items():
            key = "%s.%s" % (name, twin)
            requests.post(url + key, timeout=60, **kw)
            out[key] = key
        js = r"""
const [url, twin, gzB64, text] = process.argv.slice(1);
const gzBytes = Buffer.from(gzB64, 'base64');
(async () => {
  const fd = new FormData();
  fd.append('title', 'hello');
  fd.append('file', new Blob([gzBytes], { type: 'application/gzip' }), 'x.gz');
  await fetch(url + 'node_fetch_formdata.' + twin, { method: 'POST', body: fd });
  await fetch(url + 'node_fetch_urlsearchparams.' + twin,
              { method: 'POST', body: new URLSearchParams({ note: text, a: '1' }) });
  await fetch(url + 'node_fetch_json_data_url.' + twin, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'x.gz', data: 'data:application/gzip;base64,' + gzB64 }) });
})();
"""
        subprocess.run([args.node, "-e", js, url, twin, b64(gz(p)).decode(), p.decode("latin1")],
                       check=True, timeout=60)
        for name in ("node_fetch_formdata", "node_fetch_urlsearchparams", "node_fetch_json_data_url"):
            key = "%s.%s" % (name, twin)
            out[key] = key
        if args.chromium:
            for name in chromium(args, capture, twin, gz(p), p):
                key = "%s.%s" % (name, twin)
                out[key] = key
    return {k: RECEIVED["capture:" + v] for k, v in out.items()}


CHROMIUM_PAGE = """<!doctype html><html><body>
<form id="f" enctype="multipart/form-data"><input name="title" value="hello">
<input type="file" name="file"><textarea name="note"></textarea></form>
<script>
const twin = "%(twin)s", gz = Uint8Array.from(atob("%(gz)s"), c => c.charCodeAt(0));
const text = atob("%(text)s");
const send = (name, init) => fetch("/capture/" + name + "." + twin, Object.assign({method: "POST"}, init));
(async () => {
  const file = new File([gz], "x.gz", {type: "application/gzip"});
  const form = document.getElementById("f");
  const dt = new DataTransfer();
  dt.items.add(file);
  form.elements.file.files = dt.files;
  form.elements.note.value = text;
  await send("chromium_form_element", {body: new FormData(form)});
  const fd = new FormData();
  fd.append("file", new Blob([gz], {type: "application/gzip"}), "x.gz");
  await send("chromium_formdata_blob", {body: fd});
  await send("chromium_urlsearchparams", {body: new URLSearchParams({note: text})});
  const url = await new Promise(r => { const fr = new FileReader(); fr.onload = () => r(fr.result); fr.readAsDataURL(file); });
  await send("chromium_json_data_url", {headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify({name: "x.gz", data: url, note: text})});
  document.title = "done";
})();
</script></body></html>"""


def chromium(args, capture, twin, gz_data, text):
    """What headless Chromium sends: a form element with a file input, FormData with a Blob,
    URLSearchParams and JSON with a FileReader data URL."""
    path = "/page/%s.html" % twin
    PAGES[path] = CHROMIUM_PAGE % {"twin": twin, "gz": b64(gz_data).decode(), "text": b64(text).decode()}
    r = subprocess.run([args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", "--user-data-dir=" + os.path.join(args.work, "chromium-" + twin),
                        "--virtual-time-budget=15000", "--dump-dom",
                        "http://127.0.0.1:%d%s" % (capture, path)], capture_output=True, timeout=120)
    if b"<title>done</title>" not in r.stdout:
        sys.exit("chromium did not send its requests: " + r.stderr.decode(errors="replace")[-2000:])
    return ["chromium_form_element", "chromium_formdata_blob", "chromium_urlsearchparams", "chromium_json_data_url"]


def replay(port, key, headers, body):
    keep = [(n, v) for n, v in headers
            if n.lower() not in ("host", "content-length", "connection", "expect", "transfer-encoding", "x-case")]
    return send(port, key, keep, body)


def main():
    ap = argparse.ArgumentParser()
    for a in ("nginx", "backend"):
        ap.add_argument("--" + a, type=int, required=True)
    for a in ("clamdb", "work", "php", "node", "node-modules", "deps"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--only", default=os.environ.get("DIFF_ONLY", ""))
    ap.add_argument("--chromium", default="")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("DIFF_SEED", "20")))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    server = Backend(("127.0.0.1", args.backend), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    sent, statuses = {}, {}
    clients = {} if args.only else client_requests(args, args.work, args.backend)
    for key, (headers, body) in clients.items():
        sent["client:" + key] = (headers, body)
        statuses["client:" + key] = replay(args.nginx, "client:" + key, headers, body)
    cases = dict(CASES)
    cases.update(nested_cases.cases(sys.modules[__name__]))
    cases.update(generated(args.seed))
    for name, make in sorted(cases.items()):
        if args.only and args.only not in name:
            continue
        for twin, payload in (("attack", EICAR), ("benign", BENIGN)):
            key = "%s.%s" % (name, twin)
            headers, body = make(payload)
            sent[key] = (headers, body)
            statuses[key] = send(args.nginx, key, headers, body)
    server.shutdown()

    forwarded = {k: RECEIVED[k] for k in sent if k in RECEIVED}
    got = flagged(args, os.path.join(args.work, "forwarded"),
                  parse_all(args, os.path.join(args.work, "forwarded"),
                            {k: forwarded[k] for k in forwarded if k.endswith(".attack")}))
    live = flagged(args, os.path.join(args.work, "sent"),
                   parse_all(args, os.path.join(args.work, "sent"),
                             {k: v for k, v in sent.items() if k.endswith(".attack")}))

    failures, refused_twins, inert = [], [], []
    counts = {"refused": 0, "blocked": 0, "forwarded clean": 0}
    for key in sorted(sent):
        name, twin = key.rsplit(".", 1)
        status = statuses[key]
        if twin == "attack":
            if key not in live and not name.startswith("client:"):
                inert.append(name)
            if key in forwarded:
                if key in got:
                    failures.append("%s: forwarded (%d), and %s extract a flagged item"
                                    % (name, status, ", ".join(sorted(got[key]))))
                else:
                    counts["forwarded clean"] += 1
            elif status in (400, 413):
                counts["refused"] += 1
            elif status == 403:
                counts["blocked"] += 1
            else:
                failures.append("%s: status %d, not forwarded" % (name, status))
        else:
            if key in forwarded and status == 200:
                if forwarded[key][1] != sent[key][1]:
                    failures.append("%s (benign): the backend got other bytes" % name)
            elif status in (400, 413):
                refused_twins.append((name, status))
                if name not in JUSTIFIED:
                    failures.append("%s (benign): refused with %d, no justification" % (name, status))
            else:
                failures.append("%s (benign): status %d" % (name, status))

    print("differential: %d cases (%d of them real clients' requests, %d generated with seed %d), "
          "each with a benign twin" % (len(sent) // 2, len(clients) // 2,
                                       sum(k.startswith("gen_") for k in sent) // 2, args.seed))
    print("attacks: %(blocked)d blocked, %(refused)d refused, %(forwarded clean)d forwarded with nothing flagged" % counts)
    for name, status in refused_twins:
        print("benign twin refused (%d): %s — %s" % (status, name, JUSTIFIED.get(name, "NOT JUSTIFIED")))
    for name in inert:
        print("inert (no parser extracts the payload as sent): %s" % name)
    for f in failures:
        print("FAIL " + f)
    passed = len(sent) - len(failures)
    print("%d passed, %d failed" % (passed, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
