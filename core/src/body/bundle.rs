//! Short binary values, each as a file of its own inside one POSIX tar archive: one scan for
//! many values, and each still seen from its own first byte by a scanner that unpacks archives
//! (ClamAV, and every mainstream engine, unpacks tar and detects the type of every member).
//! Without this a body of random bytes labelled url-encoded (what `curl --data-binary` sends)
//! would be hundreds of scans, and joining the values would put a compressed file at an offset
//! where a scanner no longer unpacks it.

use std::path::Path;

use crate::body::sink::BodySink;
use crate::body::RequestBody;
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// Most members in one archive (ClamAV unpacks at most 10 000 files of an archive by
/// default); a fuller bundle starts another.
pub const MAX_MEMBERS: usize = 10_000;

const BLOCK: usize = 512;

/// Values collected into tar archives of at most [`MAX_MEMBERS`] members.
pub struct Bundle<'a> {
    dir: &'a Path,
    sink: Option<BodySink<'a>>,
    members: usize,
    full: Vec<RequestBody>,
}

impl<'a> Bundle<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Bundle {
            dir,
            sink: None,
            members: 0,
            full: Vec::new(),
        }
    }

    /// Adds a value as the next member.
    pub fn push(&mut self, value: &[u8]) -> Result<(), ScanError> {
        let sink = self
            .sink
            .get_or_insert_with(|| BodySink::new(SPILL_THRESHOLD, self.dir));
        sink.push(&header(self.members, value.len() as u64))?;
        sink.push(value)?;
        let pad = (BLOCK - value.len() % BLOCK) % BLOCK;
        sink.push(&[0u8; BLOCK][..pad])?;
        self.members += 1;
        if self.members == MAX_MEMBERS {
            self.close()?;
        }
        Ok(())
    }

    /// Adds a body of any length as the next member, streamed.
    pub fn push_body(&mut self, value: &RequestBody) -> Result<(), ScanError> {
        let sink = self
            .sink
            .get_or_insert_with(|| BodySink::new(SPILL_THRESHOLD, self.dir));
        sink.push(&header(self.members, value.len()))?;
        let mut reader = value.reader(crate::body::FILE_CHUNK);
        while let Some(chunk) = reader.next_chunk() {
            sink.push(&chunk.map_err(ScanError::Body)?)?;
        }
        let pad = (BLOCK as u64 - value.len() % BLOCK as u64) % BLOCK as u64;
        sink.push(&[0u8; BLOCK][..pad as usize])?;
        self.members += 1;
        if self.members == MAX_MEMBERS {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ScanError> {
        if let Some(mut sink) = self.sink.take() {
            sink.push(&[0u8; 2 * BLOCK])?;
            self.full.push(sink.finish()?.into());
        }
        self.members = 0;
        Ok(())
    }

    /// The archives.
    pub fn finish(mut self) -> Result<Vec<RequestBody>, ScanError> {
        self.close()?;
        Ok(self.full)
    }
}

/// Writes `v` in octal into `field`, zero-padded, a NUL last.
fn octal(field: &mut [u8], mut v: u64) {
    let last = field.len() - 1;
    field[last] = 0;
    for b in field[..last].iter_mut().rev() {
        *b = b'0' + (v & 7) as u8;
        v >>= 3;
    }
}

/// A ustar header for member `n` of `len` bytes.
fn header(n: usize, len: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..6].copy_from_slice(b"value-");
    let mut digits = [0u8; 20];
    let mut k = digits.len();
    let mut m = n;
    loop {
        k -= 1;
        digits[k] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    h[6..6 + digits.len() - k].copy_from_slice(&digits[k..]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], len);
    octal(&mut h[136..148], 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::bytes_of;

    #[test]
    fn values_become_members_that_tar_reads_back() {
        let dir = std::env::temp_dir();
        let mut b = Bundle::new(&dir);
        let values: Vec<Vec<u8>> = vec![b"\x1f\x8b\x08abc".to_vec(), vec![], vec![7u8; 1000]];
        for v in &values {
            b.push(v).unwrap();
        }
        let tars = b.finish().unwrap();
        assert_eq!(tars.len(), 1);
        let tar = bytes_of(&tars[0]);
        assert_eq!(tar.len() % BLOCK, 0);
        let out = std::env::temp_dir().join(format!("ometascan-bundle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("b.tar"), &tar).unwrap();
        let st = std::process::Command::new("tar")
            .arg("-xf")
            .arg("b.tar")
            .current_dir(&out)
            .status()
            .unwrap();
        assert!(st.success());
        for (i, v) in values.iter().enumerate() {
            assert_eq!(&std::fs::read(out.join(format!("value-{i}"))).unwrap(), v);
        }
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_full_bundle_starts_another() {
        let dir = std::env::temp_dir();
        let mut b = Bundle::new(&dir);
        for _ in 0..MAX_MEMBERS + 1 {
            b.push(b"x").unwrap();
        }
        assert_eq!(b.finish().unwrap().len(), 2);
    }
}
