//! The scan of a piece: the piece as any request; then, applied to the module's copy, what
//! the backend would expose — a tus upload the piece completes, a file a range was written
//! into, the object an S3 completion assembles — scanned whole before the piece is forwarded.

use std::sync::Arc;
use std::time::Instant;

use super::s3;
use super::spool::{PieceError, Spool, Upload};
use super::{Kind, Piece};
use crate::body::RequestBody;
use crate::headers::HeaderList;
use crate::scan::{
    ScanError, ScanOptions, ScanOutcome, ScanRequest, Scanner, Target, UploadReport, Verdict,
};

impl From<PieceError> for ScanError {
    fn from(e: PieceError) -> Self {
        match e {
            PieceError::Unknown | PieceError::Misfit { .. } => {
                ScanError::Unassembled(e.to_string())
            }
            PieceError::Blocked => ScanError::Refused {
                status: 403,
                reason: e.to_string(),
            },
            PieceError::Limit(l) => ScanError::over_limit(l),
            PieceError::Io(io) => ScanError::Spill(io),
        }
    }
}

/// What a piece leaves to scan whole: the copies it is made of, locked while they are read.
struct Assembled {
    locks: Vec<Upload>,
    body: RequestBody,
}

impl Scanner {
    /// Scans a piece of an upload (see the module docs). A blocked tus upload or S3 upload is
    /// refused from then on.
    pub async fn scan_piece(
        self: Arc<Self>,
        target: Target,
        req: ScanRequest,
        opts: ScanOptions,
        piece: Piece,
        spool: Spool,
    ) -> ScanOutcome {
        let key = String::from_utf8_lossy(&piece.key).into_owned();
        let mut outcome = self.scan_piece_inner(target, req, opts, piece, spool).await;
        let assembled = outcome.upload.as_ref().and_then(|u| u.assembled);
        outcome.upload = Some(Box::new(UploadReport { key, assembled }));
        outcome
    }

    async fn scan_piece_inner(
        self: Arc<Self>,
        target: Target,
        req: ScanRequest,
        opts: ScanOptions,
        piece: Piece,
        spool: Spool,
    ) -> ScanOutcome {
        let started = Instant::now();
        let outcome = self
            .clone()
            .scan_decoded(target.clone(), req.clone(), opts.clone())
            .await;
        match &outcome.result {
            Ok(Verdict::Allowed) => {}
            Ok(Verdict::Blocked { .. }) if piece.kind == Kind::Tus => {
                let (s, key) = (spool.clone(), piece.key.clone());
                let _ = tokio::task::spawn_blocking(move || block(&s, &key)).await;
                return outcome;
            }
            _ => return outcome,
        }
        let (s, p, r, o) = (spool.clone(), piece.clone(), req.clone(), opts.clone());
        let prepared = tokio::task::spawn_blocking(move || prepare(&s, &p, &r, &o)).await;
        let assembled = match prepared {
            Ok(Ok(Some(a))) => a,
            Ok(Ok(None)) => return outcome,
            Ok(Err(e)) => return ScanOutcome::failed(e),
            Err(_) => return ScanOutcome::failed(ScanError::Internal),
        };
        tracing::debug!(
            "upload \"{}\" assembled, {} bytes: scanning it",
            String::from_utf8_lossy(&piece.key),
            assembled.body.len()
        );
        let whole = ScanRequest {
            headers: as_upload(&req.headers),
            body: assembled.body.clone(),
            ..req
        };
        let mut result = self.scan_decoded(target, whole, opts).await;
        result.elapsed = started.elapsed();
        result.upload = Some(Box::new(UploadReport {
            key: String::new(),
            assembled: Some(assembled.body.len()),
        }));
        let allowed = matches!(result.result, Ok(Verdict::Allowed));
        let blocked = matches!(result.result, Ok(Verdict::Blocked { .. }));
        let _ =
            tokio::task::spawn_blocking(move || after(&spool, &piece, assembled, allowed, blocked))
                .await;
        if let Ok(Verdict::Sanitized { .. }) = result.result {
            result.result = Err(ScanError::Decode(
                "the scanner sanitized an upload assembled from pieces; the backend holds the \
                 pieces as sent"
                    .into(),
            ));
        }
        result
    }
}

/// What becomes of the copies after the verdict on what they assemble: a completed upload's
/// copy goes (but a tus partial upload's, kept for its final upload), as do the parts an S3
/// completion or a tus final upload joined; a blocked one is kept, empty, to refuse later
/// pieces.
fn after(spool: &Spool, piece: &Piece, assembled: Assembled, allowed: bool, blocked: bool) {
    match piece.kind {
        Kind::Tus | Kind::Fields if allowed => {
            for u in assembled.locks {
                if !u.state.partial {
                    u.remove();
                }
            }
        }
        // The parts are gone at the backend too.
        Kind::TusFinal { .. } | Kind::S3Complete if allowed => {
            for u in assembled.locks {
                u.remove();
            }
        }
        Kind::Tus | Kind::Fields if blocked => {
            for mut u in assembled.locks {
                let _ = u.block();
            }
        }
        // The backend does not get the range: the copy, which has it, goes (a later range of
        // the file is refused until the file is written whole again).
        Kind::Range { .. } if !allowed => {
            drop(assembled.locks);
            spool.remove(&piece.key);
        }
        Kind::TusFinal { .. } if blocked => {
            for mut u in assembled.locks {
                let _ = u.block();
            }
        }
        Kind::S3Complete if blocked => {
            drop(assembled.locks);
            let _ = block_new(spool, &piece.key);
        }
        _ => {}
    }
}

/// The piece's headers for the scan of the whole upload: its type is the file's, unknown.
fn as_upload(h: &HeaderList) -> HeaderList {
    let mut out: HeaderList = h
        .iter()
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case(b"content-type")
                && !n.eq_ignore_ascii_case(b"content-length")
                && !n.eq_ignore_ascii_case(b"content-encoding")
        })
        .cloned()
        .collect();
    out.push((
        bytes::Bytes::from_static(b"Content-Type"),
        bytes::Bytes::from_static(b"application/octet-stream"),
    ));
    out
}

/// Applies the piece to the module's copies; what is then to be scanned whole, if anything.
fn prepare(
    spool: &Spool,
    piece: &Piece,
    req: &ScanRequest,
    opts: &ScanOptions,
) -> Result<Option<Assembled>, ScanError> {
    let max = spool.limits().max_upload;
    let body = &req.body;
    match piece.kind {
        Kind::Tus => {
            let mut upload = spool.open(&piece.key, false)?.ok_or(PieceError::Unknown)?;
            if upload.state.total.is_none() {
                upload.state.total = piece.total;
            }
            upload.write(piece.offset, body, max, true)?;
            when_complete(upload)
        }
        Kind::TusCreation => {
            // The first bytes, kept until the backend's answer names the upload.
            spool.create(&piece.key, piece.total)?;
            let mut upload = spool.open(&piece.key, false)?.ok_or(PieceError::Unknown)?;
            upload.write(0, body, max, true)?;
            // Complete, it was scanned whole as the piece.
            Ok(None)
        }
        Kind::TusFinal { ref parts } => concatenate(spool, parts, max).map(Some),
        Kind::Range { whole } => range(spool, piece, body, whole, max),
        Kind::S3Part { number } => {
            refuse_blocked(spool, &piece.key)?;
            let decoded = crate::scan::form::decoded(req.clone(), opts)?.body;
            let key = s3::part_key(&piece.key, number);
            spool.create(&key, None)?;
            let mut part = spool.open(&key, false)?.ok_or(PieceError::Unknown)?;
            part.write(0, &decoded, max, true)?;
            Ok(None)
        }
        Kind::S3Complete => {
            refuse_blocked(spool, &piece.key)?;
            let listed = s3::listed_parts(body).map_err(ScanError::ambiguous)?;
            assemble_parts(spool, &piece.key, &listed, max).map(Some)
        }
        Kind::Fields => fields(spool, piece, req, opts, max),
    }
}

/// The upload to scan whole, if the piece completed it.
fn when_complete(upload: Upload) -> Result<Option<Assembled>, ScanError> {
    if !upload.complete() {
        return Ok(None);
    }
    let body = upload.body()?;
    Ok(Some(Assembled {
        locks: vec![upload],
        body,
    }))
}

/// A range written into the copy of its file: the file as it then stands.
fn range(
    spool: &Spool,
    piece: &Piece,
    body: &RequestBody,
    whole: bool,
    max: u64,
) -> Result<Option<Assembled>, ScanError> {
    let mut upload = match spool.open(&piece.key, false)? {
        Some(u) if !whole => u,
        // A new file, or one the client writes whole: its copy starts here.
        _ if whole || piece.offset == 0 => {
            spool.create(&piece.key, None)?;
            spool.open(&piece.key, false)?.ok_or(PieceError::Unknown)?
        }
        _ => return Err(PieceError::Unknown.into()),
    };
    upload.write(piece.offset, body, max, false)?;
    // The copy that is the piece alone was scanned as the piece.
    if upload.state.length == body.len() {
        return Ok(None);
    }
    let assembled = upload.body()?;
    Ok(Some(Assembled {
        locks: vec![upload],
        body: assembled,
    }))
}

/// A chunking uploader's piece, as its description says.
fn fields(
    spool: &Spool,
    piece: &Piece,
    req: &ScanRequest,
    opts: &ScanOptions,
    max: u64,
) -> Result<Option<Assembled>, ScanError> {
    let spec = piece.fields.as_ref().ok_or(ScanError::Internal)?;
    let limits = opts.body_limits.multipart;
    let Some(d) = super::fields::describe(spec, &req.headers, &req.body, limits)? else {
        return Ok(None);
    };
    let mut key = b"fields ".to_vec();
    key.extend_from_slice(&piece.key);
    key.push(b' ');
    key.extend_from_slice(&d.key);
    let mut upload = match spool.open(&key, false)? {
        Some(u) => u,
        // In order, an upload starts with its first piece; a later one without a copy had
        // its first pieces go elsewhere.
        None if d.offset == 0 || spec.parallel => spool.start(&key, d.total)?,
        None => return Err(PieceError::Unknown.into()),
    };
    match (upload.state.total, d.total) {
        (Some(a), Some(b)) if a != b => {
            return Err(ScanError::ambiguous(format!(
                "a piece that gives the file {b} bytes, not the {a} an earlier piece gave"
            )))
        }
        (None, Some(t)) if upload.held_end() > t => {
            return Err(ScanError::ambiguous(format!(
                "a last piece that ends the file at {t} bytes, before pieces already held"
            )))
        }
        (None, Some(t)) => upload.state.total = Some(t),
        _ => {}
    }
    if spec.parallel {
        upload.write_at(d.offset, &d.data, max)?;
    } else {
        upload.write(d.offset, &d.data, max, false)?;
    }
    when_complete(upload)
}

/// The parts `listed`, in that order, as one body; each locked, in ascending order of their
/// numbers whatever the list's order (two completions never wait on each other).
fn assemble_parts(
    spool: &Spool,
    upload: &[u8],
    listed: &[u32],
    max: u64,
) -> Result<Assembled, ScanError> {
    let mut numbers = listed.to_vec();
    numbers.sort_unstable();
    if numbers.windows(2).any(|w| w[0] == w[1]) {
        return Err(ScanError::ambiguous("a part list that names a part twice"));
    }
    let mut locks: Vec<(u32, Upload)> = Vec::with_capacity(numbers.len());
    for n in numbers {
        let part = spool
            .open(&s3::part_key(upload, n), false)?
            .ok_or(PieceError::Unknown)?;
        locks.push((n, part));
    }
    let mut body = RequestBody::new();
    for n in listed {
        let (_, part) = locks
            .iter()
            .find(|(m, _)| m == n)
            .ok_or(ScanError::Internal)?;
        for p in part.body()?.parts() {
            body.push(p.clone());
        }
        if body.len() > max {
            return Err(PieceError::Limit(format!("an object of more than {max} bytes")).into());
        }
    }
    Ok(Assembled {
        locks: locks.into_iter().map(|(_, u)| u).collect(),
        body,
    })
}

/// A tus final upload: the partial uploads it names, in its order, each complete; locked in
/// the order of their keys.
fn concatenate(spool: &Spool, parts: &[Vec<u8>], max: u64) -> Result<Assembled, ScanError> {
    let mut keys: Vec<&Vec<u8>> = parts.iter().collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(ScanError::ambiguous(
            "a final upload that names a partial upload twice",
        ));
    }
    let mut locks: Vec<(&Vec<u8>, Upload)> = Vec::with_capacity(keys.len());
    for key in keys {
        let part = spool.open(key, false)?.ok_or(PieceError::Unknown)?;
        if part.state.blocked {
            return Err(PieceError::Blocked.into());
        }
        if !part.complete() {
            return Err(ScanError::Unassembled(format!(
                "the partial upload \"{}\" is not complete in the module's copy",
                String::from_utf8_lossy(key)
            )));
        }
        locks.push((key, part));
    }
    let mut body = RequestBody::new();
    for key in parts {
        let (_, part) = locks
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or(ScanError::Internal)?;
        for p in part.body()?.parts() {
            body.push(p.clone());
        }
        if body.len() > max {
            return Err(PieceError::Limit(format!("an upload of more than {max} bytes")).into());
        }
    }
    Ok(Assembled {
        locks: locks.into_iter().map(|(_, u)| u).collect(),
        body,
    })
}

/// Refuses a piece of an upload that was blocked.
fn refuse_blocked(spool: &Spool, key: &[u8]) -> Result<(), PieceError> {
    match spool.open(key, false)? {
        Some(u) if u.state.blocked => Err(PieceError::Blocked),
        _ => Ok(()),
    }
}

fn block(spool: &Spool, key: &[u8]) -> Result<(), PieceError> {
    if let Some(mut upload) = spool.open(key, false)? {
        upload.block()?;
    }
    Ok(())
}

/// Marks `key` blocked, making its entry.
fn block_new(spool: &Spool, key: &[u8]) -> Result<(), PieceError> {
    spool.create(key, None)?;
    block(spool, key)
}
