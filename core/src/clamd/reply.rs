//! clamd's answers to the `z`-commands (each ends with a NUL byte), read strictly: a reply is
//! printable text of at most [`MAX_REPLY`] bytes, and anything but the shapes below is a
//! protocol failure, never "clean".

/// Longest reply accepted, NUL excluded (clamd's are a line: a threat name, an error, a
/// version string).
pub const MAX_REPLY: usize = 1024;

/// What `zINSTREAM` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `stream: OK`.
    Clean,
    /// `stream: NAME FOUND`.
    Found(String),
    /// `INSTREAM size limit exceeded. ERROR`: the stream is over clamd's `StreamMaxLength`.
    SizeLimit,
    /// `... ERROR`: clamd could not scan.
    Error(String),
}

/// Why a reply is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("clamd reply over {MAX_REPLY} bytes")]
    TooLong,
    #[error("clamd reply with a byte that is not printable text")]
    NotText,
    #[error("unexpected clamd reply \"{0}\"")]
    Unexpected(String),
}

/// The first reply in `buf`: `Ok(None)` while its NUL has not arrived (and the bytes so far
/// could still be one), else the reply's text and the bytes it used.
pub fn split_reply(buf: &[u8]) -> Result<Option<(&str, usize)>, ReplyError> {
    let Some(end) = buf.iter().take(MAX_REPLY + 1).position(|&b| b == 0) else {
        return if buf.len() > MAX_REPLY {
            Err(ReplyError::TooLong)
        } else if buf.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t') {
            Ok(None)
        } else {
            Err(ReplyError::NotText)
        };
    };
    let line = &buf[..end];
    if !line
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
    {
        return Err(ReplyError::NotText);
    }
    // Printable ASCII is UTF-8.
    let text = std::str::from_utf8(line).map_err(|_| ReplyError::NotText)?;
    Ok(Some((text, end + 1)))
}

/// Reads the reply to `zINSTREAM`.
pub fn instream_reply(text: &str) -> Result<Reply, ReplyError> {
    scan_reply(text, |t| t.strip_prefix("stream: "))
}

/// Reads the reply to `zFILDES`: `fd[12]: OK`, `fd[12]: NAME FOUND` (clamd names the
/// descriptor as it received it).
pub fn fildes_reply(text: &str) -> Result<Reply, ReplyError> {
    scan_reply(text, |t| {
        let rest = t.strip_prefix("fd[")?;
        let close = rest.find("]: ")?;
        rest[..close]
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| &rest[close + 3..])
            .filter(|_| close > 0)
    })
}

/// A scan's reply: an error, or `result` after the prefix `strip` takes off.
fn scan_reply(text: &str, strip: impl Fn(&str) -> Option<&str>) -> Result<Reply, ReplyError> {
    let unexpected = || ReplyError::Unexpected(text.to_string());
    if let Some(error) = text.strip_suffix(" ERROR") {
        return Ok(if error == "INSTREAM size limit exceeded." {
            Reply::SizeLimit
        } else {
            Reply::Error(error.trim().to_string())
        });
    }
    let result = strip(text).ok_or_else(unexpected)?;
    if result == "OK" {
        return Ok(Reply::Clean);
    }
    let name = result.strip_suffix(" FOUND").ok_or_else(unexpected)?;
    // A signature name is one word (`Win.Test.EICAR_HDB-1`, `Heuristics.Encrypted.Zip`).
    if name.is_empty() || name.bytes().any(|b| b == b' ' || b == b'\t') {
        return Err(unexpected());
    }
    Ok(Reply::Found(name.to_string()))
}

/// Reads the reply to `zVERSION`: `ClamAV 1.4.6/27431/Tue Dec  1 09:34:05 2026` (the engine,
/// then the signature database's version and date once one is loaded).
pub fn version_reply(text: &str) -> Result<&str, ReplyError> {
    if text.starts_with("ClamAV ") && text.len() > "ClamAV ".len() {
        Ok(text)
    } else {
        Err(ReplyError::Unexpected(text.to_string()))
    }
}

/// Whether the reply to `zPING` says clamd is up.
pub fn is_pong(text: &str) -> bool {
    text == "PONG"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_clamd_answers() {
        assert_eq!(instream_reply("stream: OK"), Ok(Reply::Clean));
        assert_eq!(
            instream_reply("stream: Eicar-Signature FOUND"),
            Ok(Reply::Found("Eicar-Signature".into()))
        );
        assert_eq!(
            instream_reply("INSTREAM size limit exceeded. ERROR"),
            Ok(Reply::SizeLimit)
        );
        assert_eq!(
            instream_reply("Can't allocate memory ERROR"),
            Ok(Reply::Error("Can't allocate memory".into()))
        );
        assert_eq!(
            version_reply("ClamAV 1.4.6/27431/Tue Dec  1 09:34:05 2026"),
            Ok("ClamAV 1.4.6/27431/Tue Dec  1 09:34:05 2026")
        );
        assert!(is_pong("PONG"));
    }

    #[test]
    fn anything_else_is_not_clean() {
        for bad in [
            "",
            "OK",
            "stream: ok",
            "stream: OK extra",
            "stream:  FOUND",
            "stream: two words FOUND",
            "stream: FOUND",
            "1: stream: OK",
            "stream: Eicar FOUND ",
        ] {
            assert!(instream_reply(bad).is_err(), "{bad:?}");
        }
        assert!(version_reply("PONG").is_err());
        assert!(!is_pong("PONG "));
        assert_eq!(fildes_reply("fd[12]: OK"), Ok(Reply::Clean));
        assert_eq!(
            fildes_reply("fd[7]: Win.Test FOUND"),
            Ok(Reply::Found("Win.Test".into()))
        );
        for bad in [
            "fd[]: OK",
            "fd[x]: OK",
            "fd[1] OK",
            "stream: OK",
            "fd[1]: ok",
        ] {
            assert!(fildes_reply(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_reply_is_bounded_text_ending_with_nul() {
        assert_eq!(split_reply(b"stream: O"), Ok(None));
        assert_eq!(
            split_reply(b"stream: OK\0rest"),
            Ok(Some(("stream: OK", 11)))
        );
        assert_eq!(split_reply(b"stream: \x1bOK\0"), Err(ReplyError::NotText));
        assert_eq!(split_reply(b"stream: \xffOK"), Err(ReplyError::NotText));
        let long = vec![b'a'; MAX_REPLY + 1];
        assert_eq!(split_reply(&long), Err(ReplyError::TooLong));
        let mut exact = vec![b'a'; MAX_REPLY];
        assert_eq!(split_reply(&exact), Ok(None));
        exact.push(0);
        assert!(matches!(split_reply(&exact), Ok(Some((_, n))) if n == MAX_REPLY + 1));
    }
}
