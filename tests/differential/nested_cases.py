"""Bodies inside bodies: request shapes whose payload a backend's parser hands over inside an
object that the application reads again (JSON in a form field or in a string, a document that
is one JSON string, multipart/mixed in a part, XML, charsets, a url-encoded body without a
type, quoted-printable and base64 as lenient parsers read them), nested 2 to 9 deep.

`cases(h)` takes the harness module (its helpers: form, part, gz, b64, q, ...) and returns
{name: make(payload) -> (headers, body)}."""

import base64
import gzip
import json


def cases(h):
    B = h.B
    out = {}

    def case(f):
        out[f.__name__] = f
        return f

    def jd(obj):
        return json.dumps(obj).encode()

    def field(name, data, extra=()):
        cd = b'Content-Disposition: form-data; name="%s"' % name
        return h.part([cd] + list(extra), data)

    def clean_file():
        return h.part([b'Content-Disposition: form-data; name="0"; filename="a.txt"',
                       b"Content-Type: text/plain"], b"a plain attachment")

    def b64gz(p):
        return h.b64(h.gz(p)).decode()

    # Class 1: JSON inside a form value.
    @case
    def n_graphql_operations_base64(p):
        ops = jd({"query": "mutation ($file: Upload!) { upload(file: $file) { id } }",
                  "variables": {"file": b64gz(p)}})
        return h.mp(), h.form([field(b"operations", ops), field(b"map", b'{"0": ["variables.x"]}'),
                               clean_file()])

    @case
    def n_graphql_operations_data_url(p):
        ops = jd({"query": "mutation { upload }",
                  "variables": {"input": {"file": "data:application/gzip;base64," + b64gz(p)}}})
        return h.mp(), h.form([field(b"operations", ops), clean_file()])

    @case
    def n_slack_payload(p):
        payload = jd({"type": "block_actions", "file": {"name": "x.gz", "content": b64gz(p)}})
        return h.FORM, b"token=abc&payload=" + h.q(payload)

    @case
    def n_json_field_beside_file(p):
        meta = jd({"title": "report", "attachment": b64gz(p)})
        return h.mp(), h.form([field(b"meta", meta, [b"Content-Type: application/json"]),
                               clean_file()])

    @case
    def n_json_untyped_field_beside_file(p):
        return h.mp(), h.form([field(b"meta", jd({"attachment": b64gz(p)})), clean_file()])

    @case
    def n_json_in_json_string(p):
        inner = json.dumps({"data": b64gz(p)})
        return h.JSON, jd({"event": "upload", "payload": inner})

    @case
    def n_json_escaped_payload_in_form_field(p):
        return h.mp(), h.form([field(b"doc", jd({"text": p.decode("latin1")}))])

    # Depths 3 to 9: JSON in a JSON string in ... in a form field.
    for depth in (3, 5, 7, 9):
        def make(p, depth=depth):
            v = {"file": b64gz(p)}
            for _ in range(depth - 2):
                v = {"v": json.dumps(v)}
            return h.mp(), h.form([field(b"operations", jd(v))])
        make.__name__ = "n_depth_%d" % depth
        out[make.__name__] = make

    # Class 2: a JSON document whose top level is a string.
    @case
    def n_json_string_text_plain(p):
        return [("Content-Type", "text/plain")], jd(b64gz(p))

    @case
    def n_json_string_untyped(p):
        return [], jd(b64gz(p))

    @case
    def n_json_string_escaped_slashes(p):
        return [("Content-Type", "text/plain")], jd(b64gz(p)).replace(b"/", b"\\/")

    @case
    def n_json_string_of_the_payload(p):
        return [("Content-Type", "application/json")], jd(p.decode("latin1"))

    # Class 3: multipart/mixed inside a form (RFC 2388); commons-fileupload wants the inner
    # boundary as long as the outer one and `attachment` parts.
    @case
    def n_multipart_mixed_in_part(p):
        inner_b = b"I" * len(B)
        inner = h.form([h.part([b'Content-Disposition: attachment; filename="x.gz"', h.CT_GZ],
                               h.gz(p)),
                        h.part([b'Content-Disposition: attachment; filename="b.txt"',
                                b"Content-Type: text/plain"], b"second file")], boundary=inner_b)
        return h.mp(), h.form([field(b"files", inner,
                                     [b"Content-Type: multipart/mixed; boundary=" + inner_b])])

    @case
    def n_multipart_related_in_part(p):
        inner_b = b"R" * len(B)
        inner = h.form([h.part([b'Content-Disposition: attachment; filename="x.gz"', h.CT_GZ],
                               h.gz(p))], boundary=inner_b)
        return h.mp(), h.form([field(b"doc", inner,
                                     [b'Content-Type: multipart/related; boundary="' + inner_b + b'"'])])

    # Class 4: XML and SOAP.
    XML = [("Content-Type", "application/xml")]

    @case
    def n_xml_element_base64(p):
        return XML, b'<?xml version="1.0"?><doc><file name="x.gz">' + h.b64(h.gz(p)) + b"</file></doc>"

    @case
    def n_xml_attribute_base64(p):
        return XML, b'<doc><file data="' + h.b64(h.gz(p)) + b'"/></doc>'

    @case
    def n_xml_cdata_split(p):
        b = h.b64(h.gz(p))
        third = len(b) // 3
        return [("Content-Type", "text/xml")], (b"<doc><file>" + b[:third] + b"<![CDATA["
                                                + b[third:2 * third] + b"]]>" + b[2 * third:]
                                                + b"</file></doc>")

    @case
    def n_xml_character_references(p):
        refs = b"".join(b"&#x%x;" % c for c in p)
        return [("Content-Type", "text/xml")], b"<doc><note>" + refs + b"</note></doc>"

    @case
    def n_soap_envelope(p):
        env = (b'<?xml version="1.0" encoding="UTF-8"?>'
               b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
               b"<soap:Body><m:Upload xmlns:m=\"urn:x\"><m:Name>x.gz</m:Name><m:Data>"
               + h.b64(h.gz(p)) + b"</m:Data></m:Upload></soap:Body></soap:Envelope>")
        return [("Content-Type", "application/soap+xml; charset=utf-8")], env

    @case
    def n_xml_utf16(p):
        doc = '<?xml version="1.0" encoding="UTF-16"?><doc><file>%s</file></doc>' % b64gz(p)
        return XML, doc.encode("utf-16")

    @case
    def n_xml_untyped(p):
        return [("Content-Type", "text/plain")], b"<doc><file>" + h.b64(h.gz(p)) + b"</file></doc>"

    @case
    def n_xml_part(p):
        doc = b"<doc><file>" + h.b64(h.gz(p)) + b"</file></doc>"
        return h.mp(), h.form([field(b"doc", doc, [b"Content-Type: application/xml"]), clean_file()])

    @case
    def n_xml_internal_entity(p):
        return XML, (b'<?xml version="1.0"?><!DOCTYPE doc [<!ENTITY e "' + h.b64(h.gz(p))
                     + b'">]><doc><file>&e;</file></doc>')

    # Class 5: charsets.
    for cs in ("utf-16", "utf-7", "cp500", "utf-32"):
        def make(p, cs=cs):
            ct = "multipart/form-data; charset=%s; boundary=%s" % (cs, B.decode())
            return [("Content-Type", ct)], h.form([field(b"note", p.decode("latin1").encode(cs))])
        make.__name__ = "n_form_charset_" + cs.replace("-", "")
        out[make.__name__] = make

    for quoted in (False, True):
        def make(p, quoted=quoted):
            cs = b'"utf-16le"' if quoted else b"utf-16le"
            return h.mp(), h.form([field(b"note", p.decode("latin1").encode("utf-16-le"),
                                         [b"Content-Type: text/plain; charset=" + cs])])
        make.__name__ = "n_part_charset_utf16le" + ("_quoted" if quoted else "")
        out[make.__name__] = make

    @case
    def n_urlencoded_charset_utf16(p):
        v = p.decode("latin1").encode("utf-16-le")
        return [("Content-Type", "application/x-www-form-urlencoded; charset=utf-16le")], b"note=" + h.q(v)

    # Class 7: a url-encoded body with no Content-Type, or an empty one (Rack reads a form).
    @case
    def n_urlencoded_untyped(p):
        return [], b"title=x&file=" + h.q(h.gz(p))

    @case
    def n_urlencoded_empty_type(p):
        return [("Content-Type", "")], b"title=x&file=" + h.q(h.gz(p))

    # Class 9: quoted-printable with junk after a soft break (binascii.a2b_qp drops it up to
    # the line end), and a raw `+` in a base64 url-encoded value (python-multipart hands
    # values over undecoded).
    @case
    def n_quoted_printable_soft_break_junk(p):
        enc = b"".join(b"=%02X" % c for c in h.gz(p))
        lines = [enc[i:i + 60] for i in range(0, len(enc), 60)]
        data = b"=\rjunk-dropped\n".join(lines)
        return h.mp(), h.form([h.part([h.CD_FILE, h.CT_GZ,
                                       b"Content-Transfer-Encoding: quoted-printable"], data)])

    @case
    def n_base64_raw_plus(p):
        mtime = 0
        while b"+" not in base64.b64encode(gzip.compress(p, mtime=mtime)):
            mtime += 1
        return h.FORM, b"a=1&file=" + base64.b64encode(gzip.compress(p, mtime=mtime))

    return out
