//! The files directory: uploads stored by the SHA-256 of their bytes.
//!
//! Invariants: bytes are streamed to a temporary file inside the directory (never
//! held whole in memory), hashed while they are written, then renamed into
//! `<dir>/<first 2 hex>/<sha256>`; an existing file of that name is never
//! overwritten (same name, same bytes); no client-supplied name is ever part of a
//! path, so no upload can leave the directory; an upload that is abandoned (too
//! large, the client gone) leaves no temporary file behind.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// How many leading bytes are kept for sniffing the type.
pub const HEAD_BYTES: usize = 8192;

/// Why storing failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The upload passed the limit.
    #[error("the file is over the limit of {0} bytes")]
    TooLarge(u64),
    /// The disk said no.
    #[error("cannot store the file: {0}")]
    Io(#[from] std::io::Error),
}

/// The files directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

/// A file as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Its first bytes, for sniffing.
    pub head: Vec<u8>,
}

/// An upload being written.
pub struct Upload {
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    limit: u64,
    head: Vec<u8>,
    store: FileStore,
}

impl FileStore {
    /// The store at `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    /// Where the file with this hash is (whether or not it exists).
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        // The hash is ours (hex), never a client's string.
        let safe: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
        let prefix: String = safe.chars().take(2).collect();
        self.dir.join(prefix).join(safe)
    }

    /// Starts an upload of at most `limit` bytes.
    pub async fn begin(&self, limit: u64) -> Result<Upload, StorageError> {
        let tmp_dir = self.dir.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir).await?;
        let tmp = tmp_dir.join(format!("{}.part", ulid::Ulid::generate()));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Upload {
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            limit,
            head: Vec::with_capacity(HEAD_BYTES),
            store: self.clone(),
        })
    }

    /// Removes temporary files older than `age` (uploads cut off by a crash; a
    /// younger one may be another process's upload in progress). Returns how many.
    pub fn sweep_tmp(&self, age: std::time::Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(self.dir.join("tmp")) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|a| a > age);
            if old
                && e.path().extension().is_some_and(|x| x == "part")
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Upload {
    /// Appends bytes; past the limit, the upload is abandoned.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StorageError::TooLarge(self.limit));
        }
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk).await?;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the bytes to their content address.
    pub async fn finish(mut self) -> Result<Stored, StorageError> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
            f.sync_all().await?;
        }
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        let dest = self.store.path_of(&sha256);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            // Same name, same bytes: keep the one there.
            let _ = tokio::fs::remove_file(&self.tmp).await;
        } else {
            tokio::fs::rename(&self.tmp, &dest).await?;
        }
        Ok(Stored {
            sha256,
            size: self.size,
            head: std::mem::take(&mut self.head),
        })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Not finished (or finished: then the temporary name is gone already).
        self.file.take();
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Lower-case hex of `bytes` (a digest).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A display name from a client's file name: the last path component, without
/// control characters, at most 255 characters; never used as a path.
pub fn display_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim().to_string();
    if clean.is_empty() || clean == "." || clean == ".." {
        "upload".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_never_become_paths() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(display_name(".."), "upload");
        assert_eq!(display_name("a\u{0}b\nc.txt"), "abc.txt");
        let s = FileStore::new("/data/files");
        assert_eq!(s.path_of("../ab"), PathBuf::from("/data/files/ab/ab"));
    }

    #[actix_rt::test]
    async fn stored_by_hash_never_overwritten_and_nothing_left_when_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path());
        let mut u = s.begin(100).await.unwrap();
        u.write(b"hello ").await.unwrap();
        u.write(b"world").await.unwrap();
        let a = u.finish().await.unwrap();
        assert_eq!(a.sha256, hex(&Sha256::digest(b"hello world")));
        assert_eq!(std::fs::read(s.path_of(&a.sha256)).unwrap(), b"hello world");
        let mut u = s.begin(100).await.unwrap();
        u.write(b"hello world").await.unwrap();
        let b = u.finish().await.unwrap();
        assert_eq!(a.sha256, b.sha256);
        let mut u = s.begin(4).await.unwrap();
        assert!(matches!(
            u.write(b"12345").await,
            Err(StorageError::TooLarge(4))
        ));
        drop(u);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
