//! The spool's bounds on every upload together: how many uploads it holds and how many bytes,
//! counted by sweeping its directory (and dropping expired uploads) at most every
//! [`SWEEP_EVERY`], each worker counting its own additions in between.

use std::time::Duration;

use super::{now, parse, PieceError, Spool};

/// What the last sweep found, and what this worker added since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Swept {
    at: std::time::Instant,
    /// Uploads (not parts of one).
    uploads: usize,
    /// Bytes of every copy.
    bytes: u64,
}

/// The directory is swept at most this often (and at least once per `expire`): a new upload
/// between two sweeps is counted against the last count, not by reading every state file.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl Spool {
    /// What the spool holds, as the last sweep found it (sweeping again — dropping expired
    /// uploads, counting the others and their bytes — when it is old, or when `near_full`).
    pub(super) fn swept(
        &self,
        near_full: impl Fn(&Swept) -> bool,
    ) -> Result<std::sync::MutexGuard<'_, Option<Swept>>, PieceError> {
        let every = SWEEP_EVERY.min(self.limits.expire);
        let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = swept.filter(|s| s.at.elapsed() < every && !near_full(s));
        if fresh.is_none() {
            *swept = Some(self.sweep_now()?);
        }
        Ok(swept)
    }

    /// Refuses a new upload (`upload`: not a part of one) over the count of uploads in progress.
    pub(super) fn count_new(&self, upload: bool) -> Result<(), PieceError> {
        if !upload {
            return Ok(());
        }
        let mut swept = self.swept(|_| false)?;
        let Some(s) = swept.as_mut() else {
            return Err(PieceError::Limit("the spool could not be swept".into()));
        };
        if s.uploads >= self.limits.max_uploads {
            return Err(PieceError::Limit(format!(
                "{} uploads in progress, the spool's limit",
                s.uploads
            )));
        }
        s.uploads += 1;
        Ok(())
    }

    /// Takes `growth` more bytes of the spool's space, refusing what would go over it. Between
    /// sweeps a worker counts its own writes; near the limit every write sweeps again, so that
    /// the others' count too.
    pub(super) fn reserve(&self, growth: u64) -> Result<(), PieceError> {
        if growth == 0 {
            return Ok(());
        }
        let max = self.limits.max_space;
        let mut swept = self.swept(|s| s.bytes.saturating_add(growth) > max / 10 * 9)?;
        let Some(s) = swept.as_mut() else {
            return Err(PieceError::Limit("the spool could not be swept".into()));
        };
        if s.bytes.saturating_add(growth) > max {
            return Err(PieceError::Limit(format!(
                "the spool holds {} bytes of uploads in progress: {growth} more would be over its \
                 space of {max}",
                s.bytes
            )));
        }
        s.bytes += growth;
        Ok(())
    }

    /// Drops expired uploads; what is left.
    fn sweep_now(&self) -> Result<Swept, PieceError> {
        let mut swept = Swept {
            at: std::time::Instant::now(),
            uploads: 0,
            bytes: 0,
        };
        let limit = self.limits.expire.as_secs();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "state") {
                continue;
            }
            let old = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| parse(&t))
                .is_some_and(|s| now().saturating_sub(s.updated) > limit);
            let data = path.with_extension("data");
            if old {
                let _ = std::fs::remove_file(&data);
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let upload = path
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"u"));
            swept.uploads += usize::from(upload);
            swept.bytes += std::fs::metadata(&data).map_or(0, |m| m.len());
        }
        Ok(swept)
    }
}
