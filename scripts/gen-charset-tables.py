#!/usr/bin/env python3
"""Writes core/src/body/charset_tables.rs: what Python's codecs know, for body::charset.

Run it from the repository with the Python whose codecs the tables should follow (the
header of the output names the version):

    python3 scripts/gen-charset-tables.py            # writes core/src/body/charset_tables.rs
    python3 scripts/gen-charset-tables.py --check    # exits 1 when the file is out of date

The output holds:
- Python's codec names: `encodings.aliases.aliases` (normalized keys, only those naming a codec
  module this Python has) and the codec modules of the `encodings` package;
- the 256 code points of every single-byte (charmap) codec, from
  `bytes([i]).decode(codec, errors="replace")`, U+FFFD where a byte is undefined;
- the KS X 1001 jamo indexes that Python's euc_kr uses to compose a filler-led make-up
  sequence into one syllable;
- the multi-byte sequences accepted by the Python CJK codecs that body::charset decodes
  through encoding_rs, and for the tests a digest of their decodings;
- for the tests, vectors (bytes, Python's text) for the codecs body::charset decodes itself
  or in part (UTF-7, UTF-16, UTF-32, UTF-8, ASCII, the CJK ones), random ones from a fixed
  seed among them.

Lone surrogates that Python's UTF-7 decoder can leave in a str are written as U+FFFD, as
body::charset writes them (UTF-8 cannot hold them).
"""

import codecs
import encodings
import encodings.aliases
import importlib
import pkgutil
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "core/src/body/charset_tables.rs"

# Python's CJK codecs that body::charset decodes through encoding_rs (see charset.rs), and the
# units they are checked on: every one- and two-byte sequence, and euc_jp's three-byte ones.
EMULATED = ["big5hkscs", "cp949", "euc_jp", "euc_kr", "gb2312", "gbk", "shift_jis"]

# Codecs body::charset decodes itself, checked against vectors.
OWN = ["utf_7", "utf_8", "utf_8_sig", "utf_16", "utf_16_le", "utf_16_be", "utf_32",
       "utf_32_le", "utf_32_be", "ascii", "latin_1"]


def codec_modules():
    """{module: is_text_encoding} for every codec module of the encodings package (mbcs and
    oem only on Windows)."""
    found = {}
    for info in pkgutil.iter_modules(encodings.__path__):
        name = info.name
        try:
            mod = importlib.import_module("encodings." + name)
        except ImportError:
            continue
        if not hasattr(mod, "getregentry"):
            continue  # aliases
        found[name] = codecs.lookup(name)._is_text_encoding
    return found


def aliases(modules):
    """{alias: module}: the aliases search_function can reach (their key is normalized:
    `csHPRoman8` is not) whose module this Python has."""
    return {k: v for k, v in encodings.aliases.aliases.items()
            if v in modules and normalize(k) == k}


def normalize(label):
    """What codecs.lookup does to a name before encodings.search_function sees it (CPython's
    _Py_normalize_encoding): ASCII letters lowercased, every run of characters other than ASCII
    letters, digits and '.' made one '_', none at either end."""
    out = []
    punct = False
    for c in label:
        if (c.isascii() and c.isalnum()) or c == ".":
            if punct and out:
                out.append("_")
            out.append(c.lower())
            punct = False
        else:
            punct = True
    return "".join(out)


def resolve(label, modules, alias):
    """The module encodings.search_function finds for `label`, as body::charset looks it up."""
    norm = normalize(label)
    target = alias.get(norm) or alias.get(norm.replace(".", "_"))
    if target is not None:
        return target
    if norm and "." not in norm and norm in modules:
        return norm
    return None


def self_check(modules, alias):
    """The lookup body::charset does (normalize, then aliases, then modules) finds what
    codecs.lookup finds, for every name and odd spellings of it."""
    names = set(modules) | set(alias)
    tried = 0
    for name in sorted(names):
        for label in (name, name.upper(), name.replace("_", "-"), " " + name.replace("_", " ") + " ",
                      '"' + name + '"', name.replace("_", "--"), "-" + name, name.replace("_", ".")):
            tried += 1
            mine = resolve(label, modules, alias)
            try:
                theirs = codecs.lookup(label)
            except LookupError:
                theirs = None
            if (mine is None) != (theirs is None) or (
                    mine is not None and codecs.lookup(mine).name != theirs.name):
                sys.exit(f"lookup of {label!r}: mine {mine!r}, Python's {theirs!r}")
    return tried


def single_byte_tables(modules):
    """{module: [code point] * 256} for the charmap codecs, and latin_1's twin check."""
    tables = {}
    for name, text in sorted(modules.items()):
        if not text:
            continue
        mod = importlib.import_module("encodings." + name)
        if not hasattr(mod, "decoding_table"):
            continue
        table = []
        for i in range(256):
            s = bytes([i]).decode(name, errors="replace")
            if len(s) != 1 or ord(s) > 0xFFFF:
                sys.exit(f"{name}: byte {i:#x} decodes to {s!r}, not one BMP character")
            table.append(ord(s))
        # A charmap codec decodes bytes one by one: a whole string is the bytes' characters.
        sample = bytes(range(256))
        if sample.decode(name, errors="replace") != "".join(map(chr, table)):
            sys.exit(f"{name}: not a per-byte codec")
        tables[name] = table
    return tables


def jamo_indexes():
    """Python's euc_kr composes A4D4 (filler), A4xx (initial), A4xx (medial), A4xx (final or
    filler) into one syllable: the initial and final index of every consonant byte A1..BE
    (255 where Python refuses it in that place)."""
    cho, jong = [], []
    for c in range(0xA1, 0xBF):
        s = bytes([0xA4, 0xD4, 0xA4, c, 0xA4, 0xBF, 0xA4, 0xD4]).decode("euc_kr", "replace")
        cho.append((ord(s) - 0xAC00) // 588 if len(s) == 1 and s != "\ufffd" else 255)
        s = bytes([0xA4, 0xD4, 0xA4, 0xA1, 0xA4, 0xBF, 0xA4, c]).decode("euc_kr", "replace")
        jong.append((ord(s) - 0xAC00) % 28 if len(s) == 1 and s != "\ufffd" else 255)
    return cho, jong


def fnv(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def sanitize(s):
    """Python's text as body::charset writes it: lone surrogates as U+FFFD."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def accepted_units(codec):
    """Inclusive ranges of the two-byte inputs with a non-ASCII first byte (and euc_jp's
    three-byte ones) that Python decodes without error, read as big-endian integers, and the
    FNV-1a digest of their decodings in order, each followed by a NUL."""
    units = []
    for a in range(0x80, 0x100):
        for b in range(0x100):
            units.append(bytes([a, b]))
    if codec == "euc_jp":
        units += [bytes([0x8F, a, b]) for a in range(0xA1, 0xFF) for b in range(0xA1, 0xFF)]
    ranges, h = [], 0xCBF29CE484222325
    for u in units:
        try:
            s = u.decode(codec)
        except UnicodeDecodeError:
            continue
        n = int.from_bytes(u, "big")
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
        h = fnv(s.encode("utf-8") + b"\0", h)
    return ranges, h


def vectors():
    """(codec, bytes, Python's text with errors="replace") for the codecs decoded by hand."""
    rng = random.Random(2152)
    cases = []
    fixed = {
        "utf_7": [b"", b"+-", b"+", b"+-+-", b"A+ImIDkQ.", b"Hi Mom -+Jjo--!", b"+ZeVnLIqe-",
                  b"+AGEAYgBj-", b"+AGE", b"+AGEA", b"+AGEAYQ-", b"+AG", b"+A-", b"+AB-x",
                  b"+2D3cAQ-", b"+2D3cAQ", b"+2D0-", b"+2D0", b"+2D3YPQ-", b"+3AE-", b"a+\x80b",
                  b"+!", b"+-\x80", b"\xff+A-", b"+AGE!x", b"+AGEAYgBj\xff-", b"+2D0\xff",
                  b"+2D0+AGE-", b"+//8-", b"a\\b~c", b"+AGEA-+AGI-", b"+AAA-", b"+AGEAYgA",
                  b"+AGEAYgAA", b"+AGEAYgAB-"],
        "utf_16": [b"", b"\xff\xfeA\x00", b"\xfe\xff\x00A", b"A\x00", b"\xff\xfe", b"\xff",
                   b"A\x00B", b"\x00\xd8", b"\x00\xd8A", b"\x00\xd8A\x00", b"\x00\xdcA\x00",
                   b"\x00\xd8\x00\xdc", b"\x00\xd8\x00\xd8\x00\xdc", b"\xff\xfe\xff\xfeA\x00"],
        "utf_16_be": [b"\xfe\xff\x00A", b"\x00A\x00", b"\xd8\x00\xdc\x00", b"\xdc\x00\x00A"],
        "utf_16_le": [b"\xff\xfeA\x00", b"A\x00\x00", b"\x00\xd8\x00\xdc"],
        "utf_32": [b"", b"\xff\xfe\x00\x00A\x00\x00\x00", b"\x00\x00\xfe\xff\x00\x00\x00A",
                   b"A\x00\x00\x00", b"A\x00\x00\x00B", b"\x00\xd8\x00\x00A\x00\x00\x00",
                   b"\x00\x00\x11\x00A\x00\x00\x00", b"\xff\xfe\x00", b"\xff\xfe\x00\x00\x00"],
        "utf_32_be": [b"\x00\x00\xfe\xff\x00\x00\x00A", b"\x00\x00\xd8\x00", b"\x00\x01\xf6\x00"],
        "utf_32_le": [b"\xff\xfe\x00\x00", b"\x00\xf6\x01\x00", b"A\x00\x00"],
        "utf_8": [b"", b"\xef\xbb\xbfA", b"\xed\xa0\x80", b"\xf0\x80\x80", b"\xe2\x82", b"\xe2\x82A",
                  b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\x80\xbf", b"\xff\xfe"],
        "utf_8_sig": [b"\xef\xbb\xbfA", b"\xef\xbb\xbf\xef\xbb\xbfA", b"\xef\xbbA", b"A\xef\xbb\xbf"],
        "ascii": [b"A\x80\xffB"],
        "latin_1": [b"A\x80\xffB"],
        "euc_kr": [b"\xa4\xd4\xa4\xa1\xa4\xbf\xa4\xd4", b"\xa4\xd4\xa4\xbe\xa4\xd3\xa4\xbe",
                   b"x\xa4\xd4\xa4\xb1\xa4\xc7\xa4\xa9y", b"\xb0\xa1\xa4\xd4\xa4\xa2\xa4\xc0\xa4\xd4"],
    }
    for codec, inputs in fixed.items():
        for b in inputs:
            cases.append((codec, b))
    alphabet = {
        "utf_7": b"+-+-AZaz09/+!~\\ \x80\xff.AQgw",
        "utf_16": b"\x00\xd8\xdc\xdf\xdbA\xff\xfe",
        "utf_16_be": b"\x00\xd8\xdc\xdf\xdbA\xff\xfe",
        "utf_32": b"\x00\x00\x00\x01\x10\x11\xd8\xdcA\xff\xfe",
        "utf_8": b"A\x80\xbf\xc2\xdf\xe0\xed\xa0\xf0\xf4\x90\x8f\xff",
    }
    for codec, alpha in alphabet.items():
        for _ in range(40):
            n = rng.randrange(1, 14)
            cases.append((codec, bytes(rng.choice(alpha) for _ in range(n))))
    # Lead bytes, trail bytes, ASCII and the openers of longer units, mostly malformed.
    cjk = [0x41, 0x5C, 0x7E, 0x80, 0x81, 0x8E, 0x8F, 0xA1, 0xA2, 0xA4, 0xB7, 0xBF, 0xC8, 0xD4,
           0xDF, 0xE0, 0xEB, 0xF0, 0xFE, 0xFF]
    for codec in EMULATED:
        for _ in range(25):
            n = rng.randrange(1, 12)
            cases.append((codec, bytes(rng.choice(cjk) for _ in range(n))))
    return [(c, b, sanitize(b.decode(c, errors="replace"))) for c, b in cases]


def rust_str(s):
    out = []
    for c in s:
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        else:
            out.append("\\u{%x}" % ord(c))
    return '"' + "".join(out) + '"'


def rust_bytes(b):
    out = []
    for x in b:
        c = chr(x)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        else:
            out.append("\\x%02x" % x)
    return 'b"' + "".join(out) + '"'


def rows(items, per_line, indent="    "):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append(indent + " ".join(items[i:i + per_line]))
    return "\n".join(lines)


def generate():
    modules = codec_modules()
    alias = aliases(modules)
    tried = self_check(modules, alias)
    tables = single_byte_tables(modules)
    cho, jong = jamo_indexes()
    longest = max(len(n) for n in list(modules) + list(alias))
    version = sys.version.split()[0]

    o = []
    o.append(f"""//! Python's codecs, as body::charset needs them: generated by scripts/gen-charset-tables.py
//! from Python {version}'s `encodings` package; do not edit, run the script again.
//!
//! The name lookup was checked against `codecs.lookup` on {tried} spellings.

/// Length of the longest name below: a longer normalized label names no codec.
pub(super) const LONGEST_NAME: usize = {longest};

/// `encodings.aliases.aliases` (normalized names, sorted) with the codec module each names;
/// only aliases whose module this Python has.
pub(super) static PY_ALIASES: [(&str, &str); {len(alias)}] = [""")
    for k in sorted(alias):
        o.append(f'    ("{k}", "{alias[k]}"),')
    o.append("];\n")
    o.append(f"""/// The codec modules of the `encodings` package (sorted), text encodings or not.
pub(super) static PY_MODULES: [&str; {len(modules)}] = [""")
    for k in sorted(modules):
        o.append(f'    "{k}",')
    o.append("];\n")

    # One static per distinct table; the lower half left out where it is ASCII.
    reachable = {resolve(n, modules, alias) for n in list(modules) + list(alias)}
    tables = {n: t for n, t in tables.items() if n in reachable}
    distinct = {}
    for name, table in tables.items():
        distinct.setdefault(tuple(table), []).append(name)
    static_of = {}
    for table, names in distinct.items():
        for n in names:
            static_of[n] = "T_" + names[0].upper()
    o.append(f"""/// Python's single-byte codecs (sorted), each with the code points of its bytes, U+FFFD
/// where the codec leaves a byte undefined: 256 of them, or 128 for bytes 0x80..=0xFF when
/// bytes 0x00..=0x7F decode to themselves.
pub(super) static SINGLE_BYTE: [(&str, &[u16]); {len(tables)}] = [""")
    for name in sorted(tables):
        o.append(f'    ("{name}", &{static_of[name]}),')
    o.append("];\n")
    for table, names in distinct.items():
        ascii_ok = all(table[i] == i for i in range(128))
        half = table[128:] if ascii_ok else table
        o.append(f"/// {', '.join(names)}.")
        o.append(f"static T_{names[0].upper()}: [u16; {len(half)}] = [")
        o.append(rows([f"0x{c:04x}," for c in half], 16))
        o.append("];\n")

    o.append("""/// Python's euc_kr make-up sequences: the initial-consonant index of the jamo bytes
/// A4A1..=A4BE (255: not an initial).""")
    o.append(f"pub(super) static EUC_KR_CHOSEONG: [u8; 30] = {cho};\n")
    o.append("""/// The final-consonant index of the jamo bytes A4A1..=A4BE (255: not a final).""")
    o.append(f"pub(super) static EUC_KR_JONGSEONG: [u8; 30] = {jong};\n")

    o.append("""/// A CJK codec's module, accepted units and digest (see [`CJK_UNITS`]).
pub(super) type Units = (&'static str, &'static [(u32, u32)], u64);
""")
    o.append("""/// The two-byte inputs with a non-ASCII first byte (and euc_jp's three-byte ones) that each
/// CJK codec decoded through encoding_rs accepts (inclusive ranges of the bytes read as a
/// big-endian number), and, for the tests, the FNV-1a digest of Python's decodings of them in
/// order, each followed by a NUL.
pub(super) static CJK_UNITS: [Units; %d] = [""" % len(EMULATED))
    for codec in EMULATED:
        ranges, h = accepted_units(codec)
        o.append(f'    ("{codec}", &[')
        o.append(rows([f"(0x{a:x}, 0x{b:x})," for a, b in ranges], 6, "        "))
        o.append(f"    ], 0x{h:016x}),")
    o.append("];\n")

    vs = vectors()
    o.append("""/// For the tests: (codec, bytes, Python's `bytes.decode(codec, errors="replace")`).
#[cfg(test)]
pub(super) static VECTORS: [(&str, &[u8], &str); %d] = [""" % len(vs))
    for c, b, s in vs:
        o.append(f'    ("{c}", {rust_bytes(b)}, {rust_str(s)}),')
    o.append("];")
    return "\n".join(o) + "\n"


def main():
    text = generate()
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is out of date: run {sys.argv[0]}")
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
