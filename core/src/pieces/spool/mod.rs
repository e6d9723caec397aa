//! The module's own copy of each upload in progress: a data file (the bytes the backend holds,
//! in place) and a state file beside it, in a directory the operator names. Every worker and
//! every nginx that shares the directory sees the same uploads; one upload is changed under an
//! exclusive lock on its state file, so that two pieces never interleave. Nothing of an upload
//! is held in memory.
//!
//! The state file is one line: `ometascan-upload 1 <total or -> <length> <open|partial|blocked>
//! <updated, unix seconds> [<ranges held past a gap: first-end,...>]`, rewritten in place; the
//! key names the files through a hash, so no client-chosen text becomes a path.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::body::{RequestBody, FILE_CHUNK};

mod sweep;
use sweep::Swept;

/// The bounds of a spool (`ometascan_pieces_spool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Bytes of one upload.
    pub max_upload: u64,
    /// Uploads in progress.
    pub max_uploads: usize,
    /// An upload untouched this long is dropped.
    pub expire: Duration,
    /// Bytes of every copy in the spool together.
    pub max_space: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_upload: 10 << 30,
            max_uploads: 10_000,
            expire: Duration::from_secs(24 * 3600),
            max_space: 100 << 30,
        }
    }
}

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The length the client announced, when known.
    pub total: Option<u64>,
    /// Bytes the copy holds from offset 0.
    pub length: u64,
    /// Its assembled file was blocked: every later piece is refused.
    pub blocked: bool,
    /// A tus partial upload: kept once complete, for the final upload that names it.
    pub partial: bool,
    pub updated: u64,
    /// Ranges held past a gap after `length` (pieces that came early), sorted, apart,
    /// `[first, end)`.
    pub ahead: Vec<(u64, u64)>,
}

/// Most ranges held past gaps in one upload.
const MAX_AHEAD: usize = 1024;

/// Why a piece cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    #[error(
        "the module holds no copy of the upload (its first pieces went elsewhere, or it expired)"
    )]
    Unknown,
    #[error("the piece at offset {offset} does not fit the {length} bytes the module holds")]
    Misfit { offset: u64, length: u64 },
    #[error("the upload was blocked")]
    Blocked,
    #[error("{0}")]
    Limit(String),
    #[error("spool: {0}")]
    Io(#[from] io::Error),
}

/// A spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    /// The last sweep of the directory: when, and how many uploads it counted since (shared
    /// by the clones of the location's spool in a worker).
    swept: std::sync::Arc<std::sync::Mutex<Option<Swept>>>,
}

/// An upload's files, its state file locked while this lives.
pub struct Upload {
    meta: File,
    data: File,
    /// The spool, whose space a write takes.
    spool: Spool,
    /// The state and data files' paths.
    paths: (PathBuf, PathBuf),
    pub state: State,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>, limits: SpoolLimits) -> Self {
        Spool {
            dir: dir.into(),
            limits,
            swept: Default::default(),
        }
    }

    pub fn limits(&self) -> SpoolLimits {
        self.limits
    }

    fn paths(&self, key: &[u8]) -> (PathBuf, PathBuf) {
        let name = blake3::hash(key).to_hex();
        // An upload's files are named `u...`, those of a part of one (an S3 part, a creation's
        // first bytes: keys starting with `~`) `p...`.
        let kind = if key.starts_with(b"~") { 'p' } else { 'u' };
        let base = format!("{kind}{}", &name.as_str()[..32]);
        (
            self.dir.join(format!("{base}.state")),
            self.dir.join(format!("{base}.data")),
        )
    }

    /// Starts the copy of a new upload (tus creation): `total` bytes announced, none held.
    /// An upload of the same key is replaced.
    pub fn create(&self, key: &[u8], total: Option<u64>) -> Result<(), PieceError> {
        if let Some(t) = total.filter(|&t| t > self.limits.max_upload) {
            return Err(PieceError::Limit(format!(
                "an upload of {t} bytes is over the spool's {} per upload",
                self.limits.max_upload
            )));
        }
        self.count_new(!key.starts_with(b"~"))?;
        let mut up = self.open(key, true)?.ok_or(PieceError::Unknown)?;
        up.data.set_len(0)?;
        up.state = State {
            total,
            length: 0,
            blocked: false,
            partial: false,
            updated: now(),
            ahead: Vec::new(),
        };
        up.save()?;
        Ok(())
    }

    /// The upload `key`, locked: the one there is, or (when there is none) a new one of `total`
    /// bytes. Unlike [`Spool::create`], a copy another worker started meanwhile is kept (two
    /// chunks of a new upload that come at once).
    pub fn start(&self, key: &[u8], total: Option<u64>) -> Result<Upload, PieceError> {
        if let Some(t) = total.filter(|&t| t > self.limits.max_upload) {
            return Err(PieceError::Limit(format!(
                "an upload of {t} bytes is over the spool's {} per upload",
                self.limits.max_upload
            )));
        }
        let mut up = match self.open(key, false)? {
            Some(up) => up,
            None => {
                self.count_new(!key.starts_with(b"~"))?;
                self.open(key, true)?.ok_or(PieceError::Unknown)?
            }
        };
        if up.state.length == 0 && up.state.ahead.is_empty() && up.state.total.is_none() {
            up.state.total = total;
            up.save()?;
        }
        Ok(up)
    }

    /// The upload `key`, locked; `create`: made when missing (else `None`). An expired one is
    /// dropped and is missing.
    pub fn open(&self, key: &[u8], create: bool) -> Result<Option<Upload>, PieceError> {
        let (meta_path, data_path) = self.paths(key);
        let meta = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(&meta_path);
        let mut meta = match meta {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Waits for the other holders of the upload (workers, other nginx on the spool).
        meta.lock()?;
        // Removed meanwhile by the holder before (a termination, an expiry): no upload.
        if !same_file(&meta, &meta_path) {
            if create {
                return self.open(key, create);
            }
            return Ok(None);
        }
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&data_path)?;
        let mut text = String::new();
        meta.read_to_string(&mut text)?;
        let state = parse(&text);
        let fresh = State {
            total: None,
            length: 0,
            blocked: false,
            partial: false,
            updated: now(),
            ahead: Vec::new(),
        };
        let state = match state {
            Some(s) if now().saturating_sub(s.updated) > self.limits.expire.as_secs() => {
                // Expired: gone, as if it had never been.
                let _ = std::fs::remove_file(&data_path);
                let _ = std::fs::remove_file(&meta_path);
                return Ok(None);
            }
            Some(s) => s,
            None if create => fresh,
            // A state file another worker has just made and not yet written: no upload yet.
            None => return Ok(None),
        };
        Ok(Some(Upload {
            meta,
            data,
            spool: self.clone(),
            paths: (meta_path, data_path),
            state,
        }))
    }

    /// Gives the copy kept under `from` (a tus creation's first bytes) to the upload `to` the
    /// backend named, holding `held` of its bytes (the backend's `Upload-Offset`; all when it
    /// says nothing). `false`: there was no such copy.
    pub fn adopt(&self, from: &[u8], to: &[u8], held: Option<u64>) -> Result<bool, PieceError> {
        let Some(mut up) = self.open(from, false)? else {
            return Ok(false);
        };
        let ((from_meta, from_data), (to_meta, to_data)) = (self.paths(from), self.paths(to));
        std::fs::rename(from_data, to_data)?;
        std::fs::rename(from_meta, to_meta)?;
        if let Some(n) = held.filter(|&n| n < up.state.length) {
            up.data.set_len(n)?;
            up.state.length = n;
        }
        up.state.updated = now();
        up.save()?;
        Ok(true)
    }

    /// Drops the upload's copy (tus termination, an upload completed or blocked).
    pub fn remove(&self, key: &[u8]) {
        let (meta, data) = self.paths(key);
        let _ = std::fs::remove_file(data);
        let _ = std::fs::remove_file(meta);
    }

    /// The uploads the directory holds — in progress, a tus partial upload waiting for its final
    /// one, or blocked and kept (empty) to refuse later pieces; an expired one until a sweep
    /// drops it — counted from the names alone.
    pub fn uploads(&self) -> usize {
        std::fs::read_dir(&self.dir).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.as_encoded_bytes();
                    name.starts_with(b"u") && name.ends_with(b".state")
                })
                .count()
        })
    }

    /// Marks the upload a tus partial upload (kept once complete, for its final upload).
    pub fn set_partial(&self, key: &[u8]) -> Result<(), PieceError> {
        if let Some(mut up) = self.open(key, false)? {
            up.state.partial = true;
            up.save()?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The prefix `[0, length)` and the ranges `ahead` with `piece` added: the new prefix and
/// the ranges still past a gap.
fn merge(length: u64, ahead: &[(u64, u64)], piece: (u64, u64)) -> (u64, Vec<(u64, u64)>) {
    let mut all: Vec<(u64, u64)> = Vec::with_capacity(ahead.len() + 2);
    all.push((0, length));
    all.extend_from_slice(ahead);
    all.push(piece);
    all.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(all.len());
    for (a, b) in all {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    // The first range starts at 0 (the prefix, maybe empty, is in the list).
    let prefix = merged.first().map_or(0, |r| r.1);
    let rest = merged.into_iter().skip(1).filter(|r| r.0 < r.1).collect();
    (prefix, rest)
}

/// Whether `f` is still the file at `path` (not one unlinked since it was opened).
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn parse(text: &str) -> Option<State> {
    let mut f = text.split_ascii_whitespace();
    if (f.next()?, f.next()?) != ("ometascan-upload", "1") {
        return None;
    }
    let total = match f.next()? {
        "-" => None,
        n => Some(n.parse().ok()?),
    };
    let length = f.next()?.parse().ok()?;
    let (blocked, partial) = match f.next()? {
        "open" => (false, false),
        "partial" => (false, true),
        "blocked" => (true, false),
        _ => return None,
    };
    let updated = f.next()?.parse().ok()?;
    let mut ahead = Vec::new();
    if let Some(list) = f.next() {
        for r in list.split(',') {
            let (a, b) = r.split_once('-')?;
            ahead.push((a.parse().ok()?, b.parse().ok()?));
        }
    }
    Some(State {
        total,
        length,
        blocked,
        partial,
        updated,
        ahead,
    })
}

impl Upload {
    /// Writes the piece `body` at `offset`; `truncate`: the copy is cut to `offset` first (a tus
    /// client resends from the offset the backend holds), else what lies past the piece stays
    /// (a range written into a file). An offset past the copy's end does not fit.
    pub fn write(
        &mut self,
        offset: u64,
        body: &RequestBody,
        max: u64,
        truncate: bool,
    ) -> Result<(), PieceError> {
        if self.state.blocked {
            return Err(PieceError::Blocked);
        }
        if offset > self.state.length {
            return Err(PieceError::Misfit {
                offset,
                length: self.state.length,
            });
        }
        let end = offset + body.len();
        if end > max || self.state.total.is_some_and(|t| end > t) {
            return Err(PieceError::Limit(format!(
                "the upload would hold {end} bytes, over {}",
                self.state.total.map_or(max, |t| t.min(max))
            )));
        }
        self.reserve(end)?;
        if truncate {
            self.data.set_len(offset)?;
        }
        self.put(offset, body)?;
        self.state.length = if truncate {
            end
        } else {
            end.max(self.state.length)
        };
        self.state.updated = now();
        self.save()
    }

    /// Writes `body` into the data file at `offset`.
    fn put(&self, offset: u64, body: &RequestBody) -> Result<(), PieceError> {
        let mut at = offset;
        let mut reader = body.reader(FILE_CHUNK);
        while let Some(chunk) = reader.next_chunk() {
            let chunk = chunk?;
            self.data.write_all_at(&chunk, at)?;
            at += chunk.len() as u64;
        }
        Ok(())
    }

    /// Writes the piece `body` at `offset`, wherever it falls (a chunking uploader that sends
    /// several pieces at once): a piece past a gap is held until the gap is filled.
    pub fn write_at(
        &mut self,
        offset: u64,
        body: &RequestBody,
        max: u64,
    ) -> Result<(), PieceError> {
        if self.state.blocked {
            return Err(PieceError::Blocked);
        }
        let end = offset
            .checked_add(body.len())
            .filter(|&e| e <= max && self.state.total.is_none_or(|t| e <= t))
            .ok_or_else(|| {
                PieceError::Limit(format!(
                    "a piece at {offset} of {} bytes past the upload's {} bytes",
                    body.len(),
                    self.state.total.map_or(max, |t| t.min(max))
                ))
            })?;
        let ahead = merge(self.state.length, &self.state.ahead, (offset, end));
        if ahead.1.len() > MAX_AHEAD {
            return Err(PieceError::Limit(format!(
                "more than {MAX_AHEAD} pieces held apart"
            )));
        }
        self.reserve(end)?;
        self.put(offset, body)?;
        (self.state.length, self.state.ahead) = ahead;
        self.state.updated = now();
        self.save()
    }

    /// Takes from the spool's space what the data file grows by when it ends at `end`.
    fn reserve(&self, end: u64) -> Result<(), PieceError> {
        let now = self.data.metadata()?.len();
        self.spool.reserve(end.saturating_sub(now))
    }

    /// The end of the last byte held (past gaps too).
    pub fn held_end(&self) -> u64 {
        self.state.ahead.last().map_or(self.state.length, |r| r.1)
    }

    /// Whether the copy holds the whole upload.
    pub fn complete(&self) -> bool {
        self.state.ahead.is_empty() && self.state.total == Some(self.state.length)
    }

    /// The copy as a body to scan (a descriptor of its own on the data file).
    pub fn body(&self) -> Result<RequestBody, PieceError> {
        let mut b = RequestBody::new();
        b.push(crate::body::BodyPart::File {
            file: std::sync::Arc::new(self.data.try_clone()?),
            offset: 0,
            len: self.state.length,
        });
        Ok(b)
    }

    /// Drops the copy (the upload is complete at the backend), under its lock: whoever waits
    /// for the lock then finds no upload.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.paths.1);
        let _ = std::fs::remove_file(&self.paths.0);
    }

    pub fn block(&mut self) -> Result<(), PieceError> {
        self.state.blocked = true;
        self.state.ahead.clear();
        self.data.set_len(0)?;
        self.save()
    }

    fn save(&mut self) -> Result<(), PieceError> {
        let s = &self.state;
        let mut line = format!(
            "ometascan-upload 1 {} {} {} {}",
            s.total.map_or("-".to_string(), |t| t.to_string()),
            s.length,
            match (s.blocked, s.partial) {
                (true, _) => "blocked",
                (false, true) => "partial",
                (false, false) => "open",
            },
            s.updated
        );
        for (i, (a, b)) in s.ahead.iter().enumerate() {
            line.push(if i == 0 { ' ' } else { ',' });
            line.push_str(&format!("{a}-{b}"));
        }
        line.push('\n');
        self.meta.set_len(0)?;
        self.meta.seek(SeekFrom::Start(0))?;
        self.meta.write_all(line.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::mem;

    fn spool(limits: SpoolLimits) -> Spool {
        let dir = std::env::temp_dir().join(format!(
            "ometascan-spool-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Spool::new(dir, limits)
    }

    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    fn read(up: &Upload) -> Vec<u8> {
        crate::body::testing::bytes_of(&up.body().unwrap())
    }

    #[test]
    fn pieces_are_assembled_in_place_and_a_resent_piece_replaces_the_tail() {
        let s = spool(SpoolLimits::default());
        s.create(b"/files/a", Some(10)).unwrap();
        let mut up = s.open(b"/files/a", false).unwrap().unwrap();
        up.write(0, &mem(&[b"hello"]), 100, true).unwrap();
        assert!(!up.complete());
        drop(up);
        let mut up = s.open(b"/files/a", false).unwrap().unwrap();
        assert_eq!(up.state.length, 5);
        // The backend kept 3 bytes only: the client resends from there.
        up.write(3, &mem(&[b"LO wo"]), 100, true).unwrap();
        assert_eq!(read(&up), b"helLO wo");
        up.write(8, &mem(&[b"rl"]), 100, true).unwrap();
        assert!(up.complete());
        assert_eq!(read(&up), b"helLO worl");
    }

    #[test]
    fn a_creations_first_bytes_are_given_to_the_upload_the_backend_names() {
        let s = spool(SpoolLimits::default());
        s.create(b"~creation 1", Some(10)).unwrap();
        let mut up = s.open(b"~creation 1", false).unwrap().unwrap();
        up.write(0, &mem(&[b"hello"]), 100, true).unwrap();
        drop(up);
        assert_eq!(s.uploads(), 0);
        assert!(s.adopt(b"~creation 1", b"/files/x", Some(4)).unwrap());
        assert_eq!(s.uploads(), 1);
        assert!(s.open(b"~creation 1", false).unwrap().is_none());
        let up = s.open(b"/files/x", false).unwrap().unwrap();
        assert_eq!((read(&up), up.state.total), (b"hell".to_vec(), Some(10)));
        drop(up);
        assert!(!s.adopt(b"~creation 2", b"/files/y", None).unwrap());
        s.set_partial(b"/files/x").unwrap();
        assert!(s.open(b"/files/x", false).unwrap().unwrap().state.partial);
    }

    #[test]
    fn a_started_upload_keeps_what_another_start_wrote() {
        let s = spool(SpoolLimits::default());
        let mut up = s.start(b"/s", Some(6)).unwrap();
        up.write_at(3, &mem(&[b"def"]), 100).unwrap();
        drop(up);
        let mut up = s.start(b"/s", Some(6)).unwrap();
        up.write_at(0, &mem(&[b"abc"]), 100).unwrap();
        assert!(up.complete());
        assert_eq!(read(&up), b"abcdef");
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        let s = spool(SpoolLimits::default());
        assert!(s.open(b"/files/none", false).unwrap().is_none());
        s.create(b"/files/b", Some(4)).unwrap();
        let mut up = s.open(b"/files/b", false).unwrap().unwrap();
        assert!(matches!(
            up.write(2, &mem(&[b"xx"]), 100, true),
            Err(PieceError::Misfit {
                offset: 2,
                length: 0
            })
        ));
        assert!(matches!(
            up.write(0, &mem(&[b"12345"]), 100, true),
            Err(PieceError::Limit(_))
        ));
        up.block().unwrap();
        assert!(matches!(
            up.write(0, &mem(&[b"1"]), 100, true),
            Err(PieceError::Blocked)
        ));
        drop(up);
        s.remove(b"/files/b");
        assert!(s.open(b"/files/b", false).unwrap().is_none());
    }

    #[test]
    fn pieces_may_come_in_any_order_and_complete_once_the_gaps_are_filled() {
        let s = spool(SpoolLimits::default());
        s.create(b"/p", Some(9)).unwrap();
        let mut up = s.open(b"/p", false).unwrap().unwrap();
        up.write_at(6, &mem(&[b"ghi"]), 100).unwrap();
        up.write_at(3, &mem(&[b"def"]), 100).unwrap();
        drop(up);
        let mut up = s.open(b"/p", false).unwrap().unwrap();
        assert_eq!((up.state.length, up.state.ahead.clone()), (0, vec![(3, 9)]));
        assert!(!up.complete());
        assert_eq!(up.held_end(), 9);
        assert!(matches!(
            up.write_at(8, &mem(&[b"xx"]), 100),
            Err(PieceError::Limit(_))
        ));
        up.write_at(0, &mem(&[b"abc"]), 100).unwrap();
        assert!(up.complete());
        assert_eq!(read(&up), b"abcdefghi");
        assert_eq!(merge(2, &[(5, 7), (9, 10)], (1, 6)), (7, vec![(9, 10)]));
        assert_eq!(merge(0, &[], (4, 4)), (0, vec![]));
    }

    #[test]
    fn expired_uploads_are_gone_and_the_count_is_bounded() {
        let s = spool(SpoolLimits {
            expire: Duration::from_secs(1),
            max_uploads: 2,
            ..SpoolLimits::default()
        });
        s.create(b"/1", None).unwrap();
        s.create(b"/2", None).unwrap();
        assert!(matches!(s.create(b"/3", None), Err(PieceError::Limit(_))));
        std::thread::sleep(Duration::from_millis(2100));
        assert!(s.open(b"/1", false).unwrap().is_none());
        s.create(b"/3", None).unwrap();
        assert!(matches!(
            s.create(b"/big", Some(u64::MAX)),
            Err(PieceError::Limit(_))
        ));
    }

    #[test]
    fn the_spools_space_is_bounded_for_every_upload_together() {
        let s = spool(SpoolLimits {
            max_space: 10,
            ..SpoolLimits::default()
        });
        let mut a = s.start(b"/a", None).unwrap();
        a.write(0, &mem(&[b"123456"]), 100, true).unwrap();
        let mut b = s.start(b"/b", None).unwrap();
        assert!(matches!(
            b.write(0, &mem(&[b"12345"]), 100, true),
            Err(PieceError::Limit(_))
        ));
        b.write_at(0, &mem(&[b"1234"]), 100).unwrap();
        // Rewriting what is held takes no more space.
        a.write(0, &mem(&[b"abcdef"]), 100, true).unwrap();
        drop((a, b));
        s.remove(b"/a");
        let mut c = s.start(b"/c", None).unwrap();
        c.write(0, &mem(&[b"abcdef"]), 100, true).unwrap();
    }
}
