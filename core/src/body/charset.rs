//! Text in a named charset, as backends decode it (placeholder: UTF-8 and ASCII only).

use std::borrow::Cow;

/// A charset the module cannot decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown(pub String);

/// `bytes` decoded from the charset `label` to UTF-8 (undecodable sequences replaced, as
/// Python's and Node's lenient decoders do); borrowed when the decoding changes nothing.
pub fn to_utf8<'a>(label: &[u8], bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, Unknown> {
    let l = String::from_utf8_lossy(label).trim().to_ascii_lowercase();
    match l.as_str() {
        "utf-8" | "utf8" | "us-ascii" | "ascii" => Ok(Cow::Borrowed(bytes)),
        _ => Err(Unknown(l)),
    }
}

#[cfg(test)]
mod dumptmp {
    use std::io::Write;
    #[test]
    fn dump() {
        let encs = [
            encoding_rs::SHIFT_JIS,
            encoding_rs::EUC_JP,
            encoding_rs::EUC_KR,
            encoding_rs::GBK,
            encoding_rs::GB18030,
            encoding_rs::BIG5,
        ];
        std::fs::create_dir_all("/tmp/dump").unwrap();
        for e in encs {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(format!("/tmp/dump/{}", e.name())).unwrap(),
            );
            let mut emit = |b: &[u8]| {
                let (s, _) = e.decode_without_bom_handling(b);
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                let o: Vec<String> = s.chars().map(|c| format!("{:x}", c as u32)).collect();
                writeln!(f, "{h} {}", o.join(",")).unwrap();
            };
            for a in 0..=255u8 {
                emit(&[a]);
                for b in 0..=255u8 {
                    emit(&[a, b]);
                }
            }
            if e == encoding_rs::EUC_JP {
                for a in 0xa1..=0xfeu8 {
                    for b in 0xa1..=0xfeu8 {
                        emit(&[0x8f, a, b]);
                    }
                }
            }
            if e == encoding_rs::GB18030 {
                for a in 0x81..=0xfeu8 {
                    for b in 0x30..=0x39u8 {
                        for c in 0x81..=0xfeu8 {
                            for d in 0x30..=0x39u8 {
                                emit(&[a, b, c, d]);
                            }
                        }
                    }
                }
            }
        }
    }
}
