//! Text in a named charset, decoded as the backends decode it.
//!
//! A form field's bytes are not always the text a backend reads: Django and Starlette decode
//! every field of a `multipart/form-data; charset=X` request with Python's codec X
//! (`bytes.decode(X, errors="replace")`), busboy decodes a part's field with the part's own
//! `charset` (Node's `TextDecoder`, WHATWG's labels, after a few shortcuts of its own), and an
//! XML declaration names an encoding too. EICAR in UTF-16, UTF-7 or EBCDIC shows nothing in
//! the raw bytes, so the scanner must see the decoded text as well, and a charset the module
//! cannot decode the way the backend does is refused ([`Unknown`], HTTP 400).
//!
//! A label is read the way each backend reads it:
//! - Python: `codecs.lookup`'s normalization (ASCII letters lowercased, every run of other
//!   characters than letters, digits and `.` made one `_`), then `encodings.aliases`, then the
//!   codec modules. Python's readings are exact for UTF-8, UTF-8-sig, UTF-7, UTF-16, UTF-32
//!   (decoders written here after CPython's) and every single-byte codec (tables generated from
//!   Python by `scripts/gen-charset-tables.py`, in `charset_tables.rs`), and exact too for the
//!   CJK codecs whose characters encoding_rs's WHATWG tables give but for a few (big5hkscs,
//!   cp949, euc_jp, euc_kr, gb2312, gbk, shift_jis): the bytes are cut into units as Python
//!   cuts them, Python's accepted units are generated from Python, and encoding_rs decodes
//!   them (see `Emulated`). Python's other codecs are refused (see `python`): encoding_rs
//!   cannot stand in for them, or they are no text decoders, or nothing legitimate uses them.
//! - Node: WHATWG's labels (`encoding_rs::Encoding::for_label`), decoded as `TextDecoder` does
//!   (the encoding's own BOM removed), except the `replacement` encoding, which `TextDecoder`
//!   refuses; and busboy's shortcuts: its Latin-1 labels (`ascii`, `iso-8859-1`,
//!   `windows-1252`...) read as Latin-1, its UTF-16LE ones as Node's Buffer reads them.
//!
//! Lone surrogates, which Python's UTF-7 decoder can leave in a str, come out as U+FFFD:
//! UTF-8 cannot hold them.

use std::borrow::Cow;

use encoding_rs::Encoding;

#[rustfmt::skip]
#[path = "charset_tables.rs"]
mod tables;

/// A charset the module cannot decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown(pub String);

/// `bytes` decoded from the charset `label` to UTF-8 (undecodable sequences replaced by
/// U+FFFD, as Python's errors="replace" and TextDecoder do); borrowed when decoding changes
/// nothing. Python's reading when Python knows the label, else Node's.
pub fn to_utf8<'a>(label: &[u8], bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, Unknown> {
    let readers = Readers::of(label)?;
    Ok(readers.first().decode(bytes))
}

/// Every distinct reading of `bytes` in the charset `label`: Python's, Node's `TextDecoder`'s
/// and busboy's where they know the label and read these bytes differently (the first is
/// [`to_utf8`]'s), one entry otherwise.
pub fn readings<'a>(label: &[u8], bytes: &'a [u8]) -> Result<Vec<Cow<'a, [u8]>>, Unknown> {
    let readers = Readers::of(label)?;
    let mut out: Vec<Cow<'a, [u8]>> = Vec::with_capacity(1);
    for reader in readers.iter() {
        let text = reader.decode(bytes);
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

/// Whether decoding with `label` can change what a scanner sees of `bytes`: false for UTF-8
/// and ASCII-compatible charsets when `bytes` is all ASCII (then the decoded text is the
/// bytes), true otherwise. Cheap: used on every field of ordinary forms. Also false for UTF-8
/// text without a BOM, and for UTF-7 without a `+`.
pub fn changes(label: &[u8], bytes: &[u8]) -> Result<bool, Unknown> {
    let readers = Readers::of(label)?;
    Ok(!bytes.is_empty() && readers.iter().any(|r| !r.keeps(bytes)))
}

/// The label without the quotes and blanks around it.
fn unquoted(label: &[u8]) -> &[u8] {
    let label = label.trim_ascii();
    let label = label.strip_prefix(b"\"").unwrap_or(label);
    let label = label.strip_suffix(b"\"").unwrap_or(label);
    label.trim_ascii()
}

/// The decoders that read a label, in this order: Python's, Node's `TextDecoder`'s, busboy's.
struct Readers {
    first: Decoder,
    others: [Option<Decoder>; 2],
}

impl Readers {
    fn of(label: &[u8]) -> Result<Readers, Unknown> {
        let label = unquoted(label);
        let unknown = || Unknown(String::from_utf8_lossy(label).into_owned());
        let python = match python(label) {
            Python::Decoder(d) => Some(d),
            Python::Unknown => None,
            Python::Refused => return Err(unknown()),
        };
        let mut all = [python, whatwg(label), busboy(label)].into_iter().flatten();
        let first = all.next().ok_or_else(unknown)?;
        Ok(Readers {
            first,
            others: [all.next(), all.next()],
        })
    }

    fn iter(&self) -> impl Iterator<Item = &Decoder> {
        std::iter::once(&self.first).chain(self.others.iter().flatten())
    }

    fn first(&self) -> &Decoder {
        &self.first
    }
}

/// Byte order of UTF-16 and UTF-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// A BOM decides, little endian without one (Python's `utf-16` and `utf-32` on the
    /// little-endian machines backends run on).
    Bom,
    Little,
    Big,
}

/// One way of decoding bytes into text.
#[derive(Debug, Clone, Copy)]
enum Decoder {
    /// UTF-8, invalid sequences replaced, a BOM kept: Python's utf-8, Node's Buffer.
    Utf8,
    /// Python's utf-8-sig: UTF-8 without one leading BOM.
    Utf8Sig,
    /// Python's utf-7.
    Utf7,
    /// Python's utf-16, utf-16-le, utf-16-be.
    Utf16(Order),
    /// Python's utf-32, utf-32-le, utf-32-be.
    Utf32(Order),
    /// Node's Buffer `utf16le` (busboy's shortcut): a last odd byte dropped, a BOM kept.
    NodeUtf16Le,
    /// Python's ascii: bytes from 0x80 on are U+FFFD.
    Ascii,
    /// Latin-1 proper: every byte is the code point of its value.
    Latin1,
    /// A Python single-byte codec (see `tables::SINGLE_BYTE`).
    Table(&'static [u16]),
    /// A Python CJK codec decoded through encoding_rs.
    Emulated(&'static Emulated),
    /// Node's `TextDecoder`: WHATWG's decoder, the encoding's own BOM removed.
    Whatwg(&'static Encoding),
}

impl Decoder {
    fn decode<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let text = match *self {
            Decoder::Utf8 => String::from_utf8_lossy(bytes),
            Decoder::Utf8Sig => String::from_utf8_lossy(bytes.strip_prefix(BOM).unwrap_or(bytes)),
            Decoder::Utf7 => utf7(bytes),
            Decoder::Utf16(order) => utf16(bytes, order),
            Decoder::Utf32(order) => utf32(bytes, order),
            Decoder::NodeUtf16Le => node_utf16le(bytes),
            Decoder::Ascii => per_byte(bytes, |b| if b < 0x80 { u16::from(b) } else { 0xFFFD }),
            Decoder::Latin1 => per_byte(bytes, u16::from),
            Decoder::Table(table) => single_byte(table, bytes),
            Decoder::Emulated(e) => e.decode(bytes),
            Decoder::Whatwg(encoding) => encoding.decode_with_bom_removal(bytes).0,
        };
        match text {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }

    /// Whether the decoding of `bytes` is certainly `bytes` itself (false when unsure).
    fn keeps(&self, bytes: &[u8]) -> bool {
        match *self {
            Decoder::Utf8 => std::str::from_utf8(bytes).is_ok(),
            Decoder::Utf8Sig => !bytes.starts_with(BOM) && std::str::from_utf8(bytes).is_ok(),
            Decoder::Utf7 => bytes.is_ascii() && !bytes.contains(&b'+'),
            Decoder::Utf16(_) | Decoder::Utf32(_) | Decoder::NodeUtf16Le => bytes.is_empty(),
            Decoder::Ascii | Decoder::Latin1 | Decoder::Emulated(_) => bytes.is_ascii(),
            Decoder::Table(table) => table.len() == 128 && bytes.is_ascii(),
            Decoder::Whatwg(encoding) => whatwg_keeps(encoding, bytes),
        }
    }
}

/// UTF-8's byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn whatwg_keeps(encoding: &'static Encoding, bytes: &[u8]) -> bool {
    if encoding == encoding_rs::UTF_8 {
        !bytes.starts_with(BOM) && std::str::from_utf8(bytes).is_ok()
    } else if encoding == encoding_rs::ISO_2022_JP {
        // ASCII but for the escape and the shifts, which switch sets or are errors.
        bytes.is_ascii() && !bytes.iter().any(|b| matches!(b, 0x0E | 0x0F | 0x1B))
    } else {
        encoding.is_ascii_compatible() && bytes.is_ascii()
    }
}

/// Bytes decoded one by one through `map` (to a BMP code point); borrowed when all ASCII and
/// `map` keeps ASCII.
fn per_byte(bytes: &[u8], map: impl Fn(u8) -> u16) -> Cow<'_, str> {
    if bytes.is_ascii() && (0..0x80).all(|b| map(b) == u16::from(b)) {
        return Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default());
    }
    bytes
        .iter()
        .map(|&b| char::from_u32(u32::from(map(b))).unwrap_or('\u{FFFD}'))
        .collect::<String>()
        .into()
}

/// A Python single-byte codec's table: 256 code points, or 128 for bytes 0x80..=0xFF.
fn single_byte<'a>(table: &'static [u16], bytes: &'a [u8]) -> Cow<'a, str> {
    let low = 256 - table.len();
    per_byte(bytes, |b| match usize::from(b).checked_sub(low) {
        Some(i) => table.get(i).copied().unwrap_or(0xFFFD),
        None => u16::from(b),
    })
}

/// Python's reading of a label.
enum Python {
    /// Python decodes with this.
    Decoder(Decoder),
    /// Python knows no such codec.
    Unknown,
    /// Python decodes with a codec this module does not reproduce, or `bytes.decode` refuses
    /// the codec: refused, whatever Node makes of the label.
    Refused,
}

/// The codec Python's `bytes.decode(label)` uses, and how this module reproduces it.
///
/// Refused, as Python's `bytes.decode` refuses them (not text encodings, or always failing):
/// base64_codec, bz2_codec, hex_codec, quopri_codec, rot_13, uu_codec, zlib_codec, undefined.
///
/// Refused because encoding_rs has no decoder that gives Python's characters for every unit
/// Python accepts, corrected character for character: big5 and cp950 (about 250 units read
/// differently by Python's Big5 tables and WHATWG's HKSCS-based one, and WHATWG gives some of
/// those characters for other units too), gb18030 (Python's GB18030-2000 differs in 21 units,
/// with the same clash), cp932 (Python decodes 0xA0 and 0xFD..=0xFF, WHATWG refuses them),
/// euc_jis_2004, euc_jisx0213, shift_jis_2004, shift_jisx0213 (JIS X 0213), johab, hz,
/// iso2022_jp and its variants, iso2022_kr (stateful, their escape sequences handled
/// differently by WHATWG or not at all).
///
/// Refused because this module does not implement them, nothing legitimate sends them, and
/// refusing is safe: idna, punycode, unicode_escape, raw_unicode_escape (which would turn
/// `\x58` into `X`). mbcs and oem exist only on Windows, where they depend on the machine:
/// Python on Linux does not know them.
fn python(label: &[u8]) -> Python {
    let Some(module) = python_module(label) else {
        return Python::Unknown;
    };
    let decoder = match module {
        "utf_8" => Decoder::Utf8,
        "utf_8_sig" => Decoder::Utf8Sig,
        "utf_7" => Decoder::Utf7,
        "utf_16" => Decoder::Utf16(Order::Bom),
        "utf_16_le" => Decoder::Utf16(Order::Little),
        "utf_16_be" => Decoder::Utf16(Order::Big),
        "utf_32" => Decoder::Utf32(Order::Bom),
        "utf_32_le" => Decoder::Utf32(Order::Little),
        "utf_32_be" => Decoder::Utf32(Order::Big),
        "ascii" => Decoder::Ascii,
        // `charmap` without a map is Latin-1.
        "latin_1" | "charmap" => Decoder::Latin1,
        _ => match emulated(module) {
            Some(e) => Decoder::Emulated(e),
            None => match tables::SINGLE_BYTE.binary_search_by_key(&module, |t| t.0) {
                Ok(i) => Decoder::Table(tables::SINGLE_BYTE[i].1),
                Err(_) => return Python::Refused,
            },
        },
    };
    Python::Decoder(decoder)
}

/// The module of Python's `encodings` package that `label` names, as
/// `encodings.search_function` finds it: the alias of the normalized name (or of that name
/// with `.` made `_`), else the module of that name (not one with a `.`).
fn python_module(label: &[u8]) -> Option<&'static str> {
    // `bytes.decode` refuses an encoding name with a NUL in it.
    if label.contains(&0) {
        return None;
    }
    let mut buf = [0u8; tables::LONGEST_NAME];
    let norm = normalize(label, &mut buf)?;
    if let Some(module) = alias(norm) {
        return Some(module);
    }
    if norm.contains(&b'.') {
        let mut dotless = [0u8; tables::LONGEST_NAME];
        let dotless = &mut dotless[..norm.len()];
        for (d, &c) in dotless.iter_mut().zip(norm) {
            *d = if c == b'.' { b'_' } else { c };
        }
        return alias(dotless);
    }
    let i = tables::PY_MODULES
        .binary_search_by_key(&norm, |m| m.as_bytes())
        .ok()?;
    Some(tables::PY_MODULES[i])
}

fn alias(norm: &[u8]) -> Option<&'static str> {
    let i = tables::PY_ALIASES
        .binary_search_by_key(&norm, |a| a.0.as_bytes())
        .ok()?;
    Some(tables::PY_ALIASES[i].1)
}

/// CPython's `_Py_normalize_encoding` into `buf`: ASCII letters lowercased, every run of
/// other characters than ASCII letters, digits and `.` one `_` (none at either end). `None`
/// when longer than any codec name.
fn normalize<'b>(label: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut len = 0;
    let mut punct = false;
    for &c in label {
        if c.is_ascii_alphanumeric() || c == b'.' {
            if punct && len > 0 {
                *buf.get_mut(len)? = b'_';
                len += 1;
            }
            *buf.get_mut(len)? = c.to_ascii_lowercase();
            len += 1;
            punct = false;
        } else {
            punct = true;
        }
    }
    Some(&buf[..len])
}

/// Node's `TextDecoder` for a WHATWG label; not the `replacement` encoding, which
/// `TextDecoder` refuses.
fn whatwg(label: &[u8]) -> Option<Decoder> {
    Encoding::for_label(label)
        .filter(|&e| e != encoding_rs::REPLACEMENT)
        .map(Decoder::Whatwg)
}

/// busboy's own decoders, chosen before `TextDecoder` by the label as sent or lowercased:
/// Latin-1 for its Latin-1 and ASCII labels, Node's Buffer for UTF-8 and UTF-16LE. (Its
/// `base64` shortcut names a codec Python's `bytes.decode` refuses: refused here.)
fn busboy(label: &[u8]) -> Option<Decoder> {
    BUSBOY
        .iter()
        .find(|(names, _)| names.iter().any(|n| label.eq_ignore_ascii_case(n)))
        .map(|&(_, decoder)| decoder)
}

/// busboy's `getDecoder` shortcuts.
const BUSBOY: [(&[&[u8]], Decoder); 3] = [
    (&[b"utf-8", b"utf8"], Decoder::Utf8),
    (
        &[
            b"latin1",
            b"ascii",
            b"us-ascii",
            b"iso-8859-1",
            b"iso8859-1",
            b"iso88591",
            b"iso_8859-1",
            b"windows-1252",
            b"iso_8859-1:1987",
            b"cp1252",
            b"x-cp1252",
        ],
        Decoder::Latin1,
    ),
    (
        &[b"utf16le", b"utf-16le", b"ucs2", b"ucs-2"],
        Decoder::NodeUtf16Le,
    ),
];

/// A Python CJK codec reproduced with encoding_rs. Python's decoder is stateless: it cuts the
/// bytes into units (an ASCII byte, or a unit whose length the first byte decides), decodes a
/// unit it accepts and makes one U+FFFD of a unit it does not, starting again at the unit's
/// second byte; a unit cut by the end makes one U+FFFD of the rest. The units are cut here the
/// same way, the accepted ones are Python's (`tables::CJK_UNITS`), and runs of accepted units
/// are decoded by encoding_rs, whose text for them is Python's once `substitutions` are made
/// (the tests check every accepted unit against digests of Python's decodings).
#[derive(Debug)]
struct Emulated {
    module: &'static str,
    encoding: &'static Encoding,
    /// Characters WHATWG's tables give where Python's give others (WAVE DASH and the like).
    substitutions: &'static [(char, char)],
    /// How Python's decoder cuts and decodes units beyond its table.
    rule: Rule,
}

/// Units of Python's CJK decoders that are not all two bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Every non-ASCII byte opens a two-byte unit.
    Pairs,
    /// shift_jis: A1..=DF are half-width katakana, one byte each.
    ShiftJis,
    /// euc_jp: 8F opens a three-byte unit (JIS X 0212), whose TILDE (8F A2 B7) is `~` to
    /// Python and FULLWIDTH TILDE to WHATWG.
    EucJp,
    /// euc_kr: A4 D4 (HANGUL FILLER) opens an eight-byte KS X 1001 make-up sequence (filler,
    /// initial, medial, final or filler), which Python composes into one syllable.
    EucKr,
}

/// The Python codecs decoded through encoding_rs. gb2312 is decoded as GBK, which decodes a
/// superset; euc_kr and cp949 as WHATWG's EUC-KR (Unified Hangul Code); big5hkscs as WHATWG's
/// HKSCS-based Big5.
static EMULATED: [Emulated; 7] = [
    Emulated {
        module: "big5hkscs",
        encoding: encoding_rs::BIG5,
        substitutions: &[
            ('\u{AF}', '\u{203E}'),
            ('\u{2027}', '\u{2022}'),
            ('\u{2215}', '\u{FF0F}'),
            ('\u{2295}', '\u{2641}'),
            ('\u{2299}', '\u{2609}'),
            ('\u{FE51}', '\u{FF64}'),
            ('\u{FE68}', '\u{FF3C}'),
            ('\u{FF5E}', '\u{223C}'),
            ('\u{FFE0}', '\u{A2}'),
            ('\u{FFE1}', '\u{A3}'),
            ('\u{FFE5}', '\u{A5}'),
        ],
        rule: Rule::Pairs,
    },
    Emulated {
        module: "cp949",
        encoding: encoding_rs::EUC_KR,
        substitutions: &[],
        rule: Rule::Pairs,
    },
    Emulated {
        module: "euc_jp",
        encoding: encoding_rs::EUC_JP,
        substitutions: JIS_X_0208,
        rule: Rule::EucJp,
    },
    Emulated {
        module: "euc_kr",
        encoding: encoding_rs::EUC_KR,
        substitutions: &[],
        rule: Rule::EucKr,
    },
    Emulated {
        module: "gb2312",
        encoding: encoding_rs::GBK,
        substitutions: &[('\u{B7}', '\u{30FB}'), ('\u{2014}', '\u{2015}')],
        rule: Rule::Pairs,
    },
    Emulated {
        module: "gbk",
        encoding: encoding_rs::GBK,
        substitutions: &[],
        rule: Rule::Pairs,
    },
    Emulated {
        module: "shift_jis",
        encoding: encoding_rs::SHIFT_JIS,
        substitutions: JIS_X_0208,
        rule: Rule::ShiftJis,
    },
];

/// Where Python's JIS X 0208 (shift_jis, euc_jp) and WHATWG's Windows-flavoured tables differ.
const JIS_X_0208: &[(char, char)] = &[
    ('\u{2225}', '\u{2016}'),
    ('\u{FF0D}', '\u{2212}'),
    ('\u{FF5E}', '\u{301C}'),
    ('\u{FFE0}', '\u{A2}'),
    ('\u{FFE1}', '\u{A3}'),
    ('\u{FFE2}', '\u{AC}'),
];

fn emulated(module: &str) -> Option<&'static Emulated> {
    EMULATED.iter().find(|e| e.module == module)
}

/// What Python makes of one unit.
enum Unit {
    /// Accepted, and decoded by encoding_rs as Python decodes it.
    Table,
    /// Accepted, and this character.
    Char(char),
    /// Not accepted: one U+FFFD.
    Error,
}

impl Rule {
    /// The length of the unit `rest` starts with (its first byte is not ASCII).
    fn len(self, rest: &[u8]) -> usize {
        match (self, rest) {
            (Rule::ShiftJis, [0xA1..=0xDF, ..]) => 1,
            (Rule::EucJp, [0x8F, ..]) => 3,
            (Rule::EucKr, [0xA4, 0xD4, ..]) => 8,
            _ => 2,
        }
    }

    fn unit(self, unit: &[u8], accepted: &[(u32, u32)]) -> Unit {
        match (self, unit) {
            (Rule::ShiftJis, [_]) => Unit::Table,
            (Rule::EucJp, [0x8F, 0xA2, 0xB7]) => Unit::Char('~'),
            (Rule::EucKr, [0xA4, 0xD4, ..]) => makeup(unit).map_or(Unit::Error, Unit::Char),
            _ => {
                let n = unit.iter().fold(0u32, |n, &b| n << 8 | u32::from(b));
                let found = accepted.binary_search_by(|&(first, last)| {
                    if last < n {
                        std::cmp::Ordering::Less
                    } else if first > n {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                });
                if found.is_ok() {
                    Unit::Table
                } else {
                    Unit::Error
                }
            }
        }
    }
}

impl Emulated {
    fn decode<'a>(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        if bytes.is_ascii() {
            return Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default());
        }
        let accepted = tables::CJK_UNITS
            .iter()
            .find(|u| u.0 == self.module)
            .map_or(&[][..], |u| u.1);
        let mut out = String::with_capacity(bytes.len() * 2);
        // The accepted units from `run` on, not decoded yet.
        let mut run = 0;
        let mut i = 0;
        while let Some(&c) = bytes.get(i) {
            if c < 0x80 {
                i += 1;
                continue;
            }
            let Some(unit) = bytes.get(i..i + self.rule.len(&bytes[i..])) else {
                // "incomplete multibyte sequence": the rest.
                self.table(&bytes[run..i], &mut out);
                out.push('\u{FFFD}');
                return Cow::Owned(out);
            };
            match self.rule.unit(unit, accepted) {
                Unit::Table => {
                    i += unit.len();
                    continue;
                }
                Unit::Char(ch) => {
                    self.table(&bytes[run..i], &mut out);
                    out.push(ch);
                    i += unit.len();
                }
                Unit::Error => {
                    self.table(&bytes[run..i], &mut out);
                    out.push('\u{FFFD}');
                    i += 1;
                }
            }
            run = i;
        }
        self.table(&bytes[run..], &mut out);
        Cow::Owned(out)
    }

    /// Accepted units, decoded by encoding_rs with Python's characters put back.
    fn table(&self, units: &[u8], out: &mut String) {
        let text = self.encoding.decode_without_bom_handling(units).0;
        out.extend(text.chars().map(|c| {
            self.substitutions
                .iter()
                .find(|s| s.0 == c)
                .map_or(c, |s| s.1)
        }));
    }
}

/// The syllable of a KS X 1001 make-up sequence (A4 D4, A4 initial, A4 medial, A4 final or
/// D4), composed as Python's euc_kr composes it; `None` where Python reports an error.
fn makeup(unit: &[u8]) -> Option<char> {
    let &[0xA4, 0xD4, 0xA4, initial, 0xA4, medial, 0xA4, last] = unit else {
        return None;
    };
    let consonant = |b: u8, table: &[u8; 30]| -> Option<u32> {
        let i = usize::from(b.checked_sub(0xA1)?);
        table.get(i).filter(|&&v| v != 255).map(|&v| u32::from(v))
    };
    let cho = consonant(initial, &tables::EUC_KR_CHOSEONG)?;
    let jung = u32::from(medial.checked_sub(0xBF).filter(|&j| j < 21)?);
    let jong = match last {
        0xD4 => 0,
        b => consonant(b, &tables::EUC_KR_JONGSEONG)?,
    };
    char::from_u32(0xAC00 + cho * 588 + jung * 28 + jong)
}

/// Python's UTF-7 decoder (CPython's `PyUnicode_DecodeUTF7Stateful`, final): RFC 2152's
/// base64-of-UTF-16 runs after `+`, `+-` for `+`, every other ASCII byte itself; a malformed
/// run is one U+FFFD from its `+` on (its terminator included), a byte above 0x7F one U+FFFD.
fn utf7(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() && !bytes.contains(&b'+') {
        return Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default());
    }
    let mut out = String::with_capacity(bytes.len());
    let mut in_shift = false;
    let mut bits = 0u32;
    let mut buffer = 0u32;
    let mut surrogate = 0u32;
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        if in_shift {
            if let Some(v) = base64_value(c) {
                buffer = (buffer << 6) | v;
                bits += 6;
                i += 1;
                if bits >= 16 {
                    let unit = buffer >> (bits - 16);
                    bits -= 16;
                    buffer &= (1 << bits) - 1;
                    if surrogate != 0 {
                        if (0xDC00..0xE000).contains(&unit) {
                            let joined = 0x10000 + ((surrogate - 0xD800) << 10) + (unit - 0xDC00);
                            out.push(char::from_u32(joined).unwrap_or('\u{FFFD}'));
                            surrogate = 0;
                            continue;
                        }
                        out.push('\u{FFFD}');
                        surrogate = 0;
                    }
                    if (0xD800..0xDC00).contains(&unit) {
                        surrogate = unit;
                    } else {
                        out.push(char::from_u32(unit).unwrap_or('\u{FFFD}'));
                    }
                }
            } else {
                in_shift = false;
                if bits >= 6 || (bits > 0 && buffer != 0) {
                    // A partial character or non-zero padding: the terminator goes with it.
                    i += 1;
                    out.push('\u{FFFD}');
                    continue;
                }
                if surrogate != 0 && c < 0x80 && c != b'+' {
                    out.push('\u{FFFD}');
                }
                surrogate = 0;
                if c == b'-' {
                    i += 1;
                }
            }
        } else if c == b'+' {
            i += 1;
            match bytes.get(i) {
                Some(b'-') => {
                    i += 1;
                    out.push('+');
                }
                Some(&n) if base64_value(n).is_none() => {
                    i += 1;
                    out.push('\u{FFFD}');
                }
                _ => {
                    in_shift = true;
                    surrogate = 0;
                    bits = 0;
                    buffer = 0;
                }
            }
        } else {
            i += 1;
            out.push(if c < 0x80 { char::from(c) } else { '\u{FFFD}' });
        }
    }
    if in_shift && (surrogate != 0 || bits >= 6 || (bits > 0 && buffer != 0)) {
        out.push('\u{FFFD}');
    }
    Cow::Owned(out)
}

fn base64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Python's UTF-16 decoder: with [`Order::Bom`] a leading BOM is dropped and decides the
/// order. A lone surrogate is one U+FFFD (a high one cut by the end takes the rest with it),
/// and so is a last odd byte.
fn utf16(bytes: &[u8], order: Order) -> Cow<'_, str> {
    if bytes.is_empty() {
        return Cow::Borrowed("");
    }
    let (bytes, big) = match (order, bytes) {
        (Order::Bom, [0xFF, 0xFE, rest @ ..]) => (rest, false),
        (Order::Bom, [0xFE, 0xFF, rest @ ..]) => (rest, true),
        (order, _) => (bytes, order == Order::Big),
    };
    let unit = |i: usize| -> Option<u32> {
        let pair = [*bytes.get(i)?, *bytes.get(i + 1)?];
        Some(u32::from(if big {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }))
    };
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(u) = unit(i) {
        i += 2;
        if !(0xD800..0xDC00).contains(&u) {
            // Not a high surrogate: a character, or a lone low surrogate.
            out.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
            continue;
        }
        match unit(i) {
            Some(low) if (0xDC00..0xE000).contains(&low) => {
                i += 2;
                let c = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            Some(_) => out.push('\u{FFFD}'),
            None => {
                out.push('\u{FFFD}');
                return Cow::Owned(out);
            }
        }
    }
    if i < bytes.len() {
        out.push('\u{FFFD}');
    }
    Cow::Owned(out)
}

/// Python's UTF-32 decoder: with [`Order::Bom`] a leading BOM is dropped and decides the
/// order. A unit that is no scalar value is one U+FFFD, and so are the last 1 to 3 bytes.
fn utf32(bytes: &[u8], order: Order) -> Cow<'_, str> {
    if bytes.is_empty() {
        return Cow::Borrowed("");
    }
    let (bytes, big) = match (order, bytes) {
        (Order::Bom, [0xFF, 0xFE, 0, 0, rest @ ..]) => (rest, false),
        (Order::Bom, [0, 0, 0xFE, 0xFF, rest @ ..]) => (rest, true),
        (order, _) => (bytes, order == Order::Big),
    };
    let mut units = bytes.chunks_exact(4);
    let mut out: String = units
        .by_ref()
        .map(|u| {
            let u = [u[0], u[1], u[2], u[3]];
            let c = if big {
                u32::from_be_bytes(u)
            } else {
                u32::from_le_bytes(u)
            };
            char::from_u32(c).unwrap_or('\u{FFFD}')
        })
        .collect();
    if !units.remainder().is_empty() {
        out.push('\u{FFFD}');
    }
    Cow::Owned(out)
}

/// Node's Buffer `utf16le` read into UTF-8: a last odd byte dropped, lone surrogates U+FFFD.
fn node_utf16le(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.len() < 2 {
        return Cow::Borrowed("");
    }
    let units = bytes
        .chunks_exact(2)
        .map(|u| u16::from_le_bytes([u[0], u[1]]));
    Cow::Owned(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or('\u{FFFD}'))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

    fn text(label: &str, bytes: &[u8]) -> String {
        String::from_utf8(to_utf8(label.as_bytes(), bytes).unwrap().into_owned()).unwrap()
    }

    fn utf16(s: &str, big: bool) -> Vec<u8> {
        s.encode_utf16()
            .flat_map(|u| {
                if big {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    fn python_decoder(module: &str) -> Decoder {
        match python(module.as_bytes()) {
            Python::Decoder(d) => d,
            _ => panic!("{module} is not decoded"),
        }
    }

    #[test]
    fn utf16_with_bom_and_big_endian() {
        let mut le = vec![0xFF, 0xFE];
        le.extend(utf16(EICAR, false));
        assert_eq!(text("utf-16", &le), EICAR);
        assert_eq!(text("utf-16be", &utf16(EICAR, true)), EICAR);
        assert_eq!(text("UTF-16LE", &utf16(EICAR, false)), EICAR);
        // Without a BOM Python reads little endian.
        assert_eq!(text("utf16", &utf16("ab", false)), "ab");
        let mut be = vec![0xFE, 0xFF];
        be.extend(utf16(EICAR, true));
        assert_eq!(text("utf-16", &be), EICAR);
    }

    #[test]
    fn utf7_escapes() {
        assert_eq!(text("utf-7", b"X5O+ACE-P+ACUAQA-AP"), "X5O!P%@AP");
        assert_eq!(text("UTF7", b"1 +- 1"), "1 + 1");
        let sent = b"X5O!P%@AP[4+AFw-PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+-H*";
        assert_eq!(text("unicode-1-1-utf-7", sent), EICAR);
    }

    #[test]
    fn ebcdic() {
        let cp500 = b"\xe3\x88\x85@\x98\xa4\x89\x83\x92@\x82\x99\x96\xa6\x95@\x86\x96\xa7k@\xf4\xf2@\xa3\x89\x94\x85\xa2O";
        let sentence = "The quick brown fox, 42 times!";
        assert_eq!(text("cp500", cp500), sentence);
        assert_eq!(text("EBCDIC-CP-BE", cp500), sentence);
        assert_eq!(text("ibm500", cp500), sentence);
    }

    #[test]
    fn latin1_and_windows_1252_read_0x80_differently() {
        let r = readings(b"latin1", b"\x80").unwrap();
        assert_eq!(r, [&b"\xC2\x80"[..], "\u{20AC}".as_bytes()]);
        assert_eq!(to_utf8(b"iso-8859-1", b"\x80").unwrap(), &b"\xC2\x80"[..]);
        // Python's cp1252 leaves 0x81 undefined, WHATWG's windows-1252 and busboy do not.
        let r = readings(b"windows-1252", b"\x80\x81").unwrap();
        assert_eq!(
            r,
            [
                "\u{20AC}\u{FFFD}".as_bytes(),
                "\u{20AC}\u{81}".as_bytes(),
                "\u{80}\u{81}".as_bytes()
            ]
        );
        // Python's ascii replaces what is not ASCII.
        assert_eq!(text("us-ascii", b"a\xE9"), "a\u{FFFD}");
        assert_eq!(readings(b"ascii", b"plain").unwrap(), [&b"plain"[..]]);
    }

    #[test]
    fn unknown_labels_are_refused() {
        for label in [
            "x-no-such-charset",
            "",
            "\"\"",
            "base64",
            "rot13",
            "hex",
            "zlib",
            "idna",
            "punycode",
            "unicode_escape",
            "raw-unicode-escape",
            "undefined",
            "mbcs",
            "cp932",
            "ms932",
            "big5",
            "gb18030",
            "iso-2022-jp",
            "iso-2022-kr",
            "hz-gb-2312",
            "johab",
            "replacement",
            "utf\u{0}8",
            "utf-8.",
        ] {
            let e = Unknown(label.trim_matches('"').to_string());
            assert_eq!(to_utf8(label.as_bytes(), b"x"), Err(e.clone()), "{label}");
            assert_eq!(readings(label.as_bytes(), b"x"), Err(e.clone()), "{label}");
            assert_eq!(changes(label.as_bytes(), b"x"), Err(e), "{label}");
        }
    }

    #[test]
    fn changes_only_what_decoding_changes() {
        for label in [
            "utf-8",
            "UTF8",
            "latin1",
            "windows-1252",
            "shift_jis",
            "koi8-r",
            "gbk",
        ] {
            assert!(
                !changes(label.as_bytes(), EICAR.as_bytes()).unwrap(),
                "{label}"
            );
            assert_eq!(
                to_utf8(label.as_bytes(), EICAR.as_bytes()).unwrap(),
                EICAR.as_bytes()
            );
        }
        for label in [
            "utf-16", "utf-16be", "utf-32", "utf-7", "cp500", "cp037", "utf-8",
        ] {
            assert!(changes(label.as_bytes(), b"a+ACE-\xFF").unwrap(), "{label}");
        }
        assert!(!changes(b"utf-7", b"no plus here").unwrap());
        assert!(changes(b"utf-7", b"a+-b").unwrap());
        assert!(!changes(b"utf-16", b"").unwrap());
        // Valid UTF-8 is itself, but for the BOM TextDecoder drops.
        assert!(!changes(b"utf-8", "caf\u{E9}".as_bytes()).unwrap());
        assert!(changes(b"utf-8", b"\xEF\xBB\xBFcafe").unwrap());
        assert!(changes(b"latin1", "caf\u{E9}".as_bytes()).unwrap());
    }

    #[test]
    fn labels_are_read_as_python_and_node_read_them() {
        for label in [
            "\"UTF_16-be\"",
            " utf 16 BE ",
            "Utf--16__Be",
            "UnicodeBigUnmarked",
            "\"utf-16be\"",
        ] {
            assert_eq!(text(label, &utf16("ok", true)), "ok", "{label}");
        }
        assert_eq!(text(" Latin-1 ", b"\xE9"), "\u{E9}");
        assert_eq!(text("ISO_8859-1:1987", b"\xE9"), "\u{E9}");
        assert_eq!(text("ANSI_X3.4-1968", b"a"), "a");
        // Python makes `.` `_` for its aliases only.
        assert_eq!(text("ISO-8859.15", b"\xA4"), "\u{20AC}");
        assert!(to_utf8(b"iso8859.15", b"").is_err());
        assert_eq!(text("mac-roman", b"\x80"), "\u{C4}");
        assert_eq!(text("\"Windows_1251\"", b"\xC0"), "\u{410}");
        assert!(to_utf8(b"cp-1251", b"").is_err());
        // Only WHATWG knows these.
        assert_eq!(text("x-user-defined", b"\x80"), "\u{F780}");
        assert_eq!(text("unicodefffe", &utf16("hi", true)), "hi");
        assert_eq!(text("unicode", &utf16("hi", false)), "hi");
        assert_eq!(text("windows-874", b"\x80"), "\u{20AC}");
        // Only busboy knows this one: Node's Buffer drops the odd byte.
        assert_eq!(text("utf16le", b"h\x00i\x00!"), "hi");
    }

    #[test]
    fn utf8_sig_and_the_bom() {
        assert_eq!(
            to_utf8(b"utf-8-sig", b"\xEF\xBB\xBFab").unwrap(),
            &b"ab"[..]
        );
        let r = readings(b"utf-8", b"\xEF\xBB\xBFab").unwrap();
        assert_eq!(r, [&b"\xEF\xBB\xBFab"[..], &b"ab"[..]]);
        assert!(matches!(to_utf8(b"utf8", b"ab").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn cjk_through_encoding_rs() {
        // "日本" in each; WAVE DASH is Python's reading of Shift_JIS 0x8160.
        assert_eq!(
            text("shift_jis", b"\x93\xfa\x96\x7b\x81\x60"),
            "日本\u{301C}"
        );
        assert_eq!(text("sjis", b"\x81\x60"), "\u{301C}");
        assert_eq!(readings(b"shift_jis", b"\x81\x60").unwrap().len(), 2);
        assert_eq!(text("euc-jp", b"\xc6\xfc\xcb\xdc\x8f\xa2\xb7x"), "日本~x");
        assert_eq!(text("gb2312", b"\xc8\xd5\xb1\xbe\xa1\xa4"), "日本\u{30FB}");
        assert_eq!(text("gbk", b"\xc8\xd5\xb1\xbe"), "日本");
        assert_eq!(text("euc-kr", b"\xc0\xcf\xba\xbb"), "일본");
        assert_eq!(text("cp949", b"\xc0\xcf\xba\xbb"), "일본");
        assert_eq!(text("big5-hkscs", b"\xa4\xe9\xa5\xbb"), "日本");
        // Python's euc_kr composes a KS X 1001 make-up sequence; cp949 does not.
        let makeup = b"\xa4\xd4\xa4\xa1\xa4\xbf\xa4\xd4";
        assert_eq!(text("euc_kr", makeup), "\u{AC00}");
        assert_eq!(text("uhc", makeup), "\u{3164}\u{3131}\u{314F}\u{3164}");
    }

    /// Python's decodings of fixed and random inputs, for the decoders written here.
    #[test]
    fn pythons_vectors() {
        for &(codec, bytes, expected) in tables::VECTORS.iter() {
            let got = python_decoder(codec).decode(bytes);
            assert_eq!(
                String::from_utf8_lossy(&got),
                expected,
                "{codec} {bytes:x?}"
            );
        }
    }

    /// Every one- and two-byte input (and euc_jp's three-byte ones) Python's CJK codecs accept
    /// decodes to Python's text through encoding_rs and the substitutions. Should a new
    /// encoding_rs or Python break it, decode each unit of `CJK_UNITS` both ways (a test that
    /// writes encoding_rs's, `python3 -c` for Python's) to find the characters that differ.
    #[test]
    fn cjk_matches_python_on_what_python_accepts() {
        for &(codec, ranges, digest) in tables::CJK_UNITS.iter() {
            let decoder = python_decoder(codec);
            assert!(matches!(decoder, Decoder::Emulated(_)), "{codec}");
            let mut h = 0xCBF2_9CE4_8422_2325u64;
            for &(first, last) in ranges {
                for n in first..=last {
                    let b = n.to_be_bytes();
                    let unit = if n > 0xFFFF { &b[1..] } else { &b[2..] };
                    for &x in decoder.decode(unit).iter().chain(&[0]) {
                        h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01B3);
                    }
                }
            }
            assert_eq!(h, digest, "{codec}: encoding_rs and Python disagree");
        }
    }

    /// What Python refuses or this module does not reproduce, and the single-byte codecs.
    #[test]
    fn every_python_codec_is_decoded_or_refused_knowingly() {
        let mut refused: Vec<&str> = tables::PY_MODULES
            .iter()
            .copied()
            .filter(|m| matches!(python(m.as_bytes()), Python::Refused))
            .collect();
        refused.sort_unstable();
        assert_eq!(
            refused,
            [
                "base64_codec",
                "big5",
                "bz2_codec",
                "cp932",
                "cp950",
                "euc_jis_2004",
                "euc_jisx0213",
                "gb18030",
                "hex_codec",
                "hz",
                "idna",
                "iso2022_jp",
                "iso2022_jp_1",
                "iso2022_jp_2",
                "iso2022_jp_2004",
                "iso2022_jp_3",
                "iso2022_jp_ext",
                "iso2022_kr",
                "johab",
                "punycode",
                "quopri_codec",
                "raw_unicode_escape",
                "rot_13",
                "shift_jis_2004",
                "shift_jisx0213",
                "undefined",
                "unicode_escape",
                "uu_codec",
                "zlib_codec",
            ]
        );
        for (module, table) in tables::SINGLE_BYTE.iter() {
            assert!(matches!(table.len(), 128 | 256), "{module}");
        }
        for (alias, module) in tables::PY_ALIASES.iter() {
            assert_eq!(python_module(alias.as_bytes()), Some(*module), "{alias}");
        }
    }

    #[test]
    fn hostile_input_is_linear() {
        let big = b"+AAAA".repeat(200_000);
        for label in ["utf-7", "utf-16", "utf-32", "euc_kr", "euc-jp", "cp500"] {
            let started = std::time::Instant::now();
            let _ = readings(label.as_bytes(), &big).unwrap();
            assert!(started.elapsed().as_secs() < 5, "{label}");
        }
        // Make-up sequences that fail at their last byte, one after the other.
        let makeups = b"\xa4\xd4\xa4\xa1\xa4\xbf\xa4\xff".repeat(100_000);
        let started = std::time::Instant::now();
        let t = text("euc_kr", &makeups);
        assert!(t.starts_with("\u{FFFD}\u{6E21}\u{B7}\u{C5D8}\u{FFFD}\u{FFFD}"));
        assert!(started.elapsed().as_secs() < 5);
    }

    const LABELS: [&str; 24] = [
        "utf-8",
        "utf-8-sig",
        "utf-7",
        "utf-16",
        "utf-16le",
        "utf-16be",
        "utf-32",
        "utf-32be",
        "ascii",
        "latin1",
        "windows-1252",
        "cp500",
        "cp864",
        "koi8-r",
        "shift_jis",
        "euc-jp",
        "euc-kr",
        "cp949",
        "gb2312",
        "gbk",
        "big5hkscs",
        "x-user-defined",
        "ucs-2",
        "utf16le",
    ];

    proptest! {
        #[test]
        fn decoding_is_total_and_changes_is_truthful(
            label in proptest::sample::select(&LABELS[..]),
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let all = readings(label.as_bytes(), &bytes).unwrap();
            prop_assert!(!all.is_empty());
            prop_assert_eq!(&to_utf8(label.as_bytes(), &bytes).unwrap(), &all[0]);
            for r in &all {
                prop_assert!(std::str::from_utf8(r).is_ok());
            }
            if !changes(label.as_bytes(), &bytes).unwrap() {
                prop_assert!(all.iter().all(|r| r[..] == bytes[..]), "{} {:x?}", label, bytes);
            }
        }

        #[test]
        fn ascii_like_bytes_too(
            label in proptest::sample::select(&LABELS[..]),
            bytes in proptest::collection::vec(
                proptest::sample::select(&b"+-Aa/0\x1b\x0e$(B\xa4\xd4\x8f"[..]), 0..32),
        ) {
            let all = readings(label.as_bytes(), &bytes).unwrap();
            if !changes(label.as_bytes(), &bytes).unwrap() {
                prop_assert!(all.iter().all(|r| r[..] == bytes[..]), "{} {:x?}", label, bytes);
            }
        }
    }
}
