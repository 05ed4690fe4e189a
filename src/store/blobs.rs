//! File contents under the data folder, named by their SHA-256: the same bytes are kept
//! once, and a name never changes meaning. Written to a temporary file, synced, then
//! renamed, so a crash leaves either the whole file or none. Folders are `0700` and
//! files `0600` ([`crate::private_files`]): uploads are people's papers.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub fn new(root: impl Into<PathBuf>) -> Blobs {
        Blobs { root: root.into() }
    }

    pub fn hash(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }

    /// Stores `bytes` and returns their hash; storing the same bytes again is a no-op.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = Self::hash(bytes);
        let path = self.path(&sha);
        if path.exists() {
            return Ok(sha);
        }
        let dir = path.parent().expect("blob paths have a parent");
        crate::private_files::create_dir(dir)?;
        let tmp = dir.join(format!(".{sha}.{}.tmp", std::process::id()));
        let mut file = crate::private_files::create_file(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(sha)
    }

    pub fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(sha256))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}
