//! Document contents, named by their SHA-256: the same bytes are kept once, and a name
//! never changes meaning.
//!
//! Where they live follows the database. On SQLite (one machine) they are files under
//! the data folder ([`Blobs`]): written to a temporary file, synced, then renamed, so a
//! crash leaves either the whole file or none; folders are `0700` and files `0600`
//! ([`crate::private_files`]), since uploads are people's papers. On PostgreSQL (any
//! number of processes on any number of machines) they are rows of `blobs`, written in
//! the transaction that records the document, so every process reads what any other
//! wrote. [`Db::migrate_blobs`] moves a folder's files into the database.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::{Db, Result, StoreError, Tx};

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

impl Tx {
    /// Stores document bytes where this backend keeps them and returns their hash;
    /// storing the same bytes again adds nothing. On PostgreSQL the row belongs to this
    /// transaction (it commits with the document that names it); on SQLite the file is
    /// written at once (a file nothing names is harmless, and the next put reuses it).
    pub async fn put_blob(&mut self, folder: &Blobs, bytes: &[u8], now_ms: i64) -> Result<String> {
        let sha = Blobs::hash(bytes);
        match self {
            Tx::Sqlite(_) => {
                folder.put(bytes).map_err(|source| StoreError::File {
                    path: folder.root().to_path_buf(),
                    source,
                })?;
            }
            Tx::Postgres(t) => {
                insert_blob(t, &sha, bytes, now_ms).await?;
            }
        }
        Ok(sha)
    }

    /// Records bytes [`Db::stage_blobs`] hashed: on PostgreSQL a row of this transaction (as
    /// [`Tx::put_blob`]); on SQLite nothing more, the file is in the folder already.
    pub async fn put_staged(&mut self, staged: &Staged, now_ms: i64) -> Result<()> {
        if let Tx::Postgres(t) = self {
            insert_blob(t, &staged.sha256, &staged.bytes, now_ms).await?;
        }
        Ok(())
    }

    /// The bytes stored under `sha256`, or `None` when this backend's store lacks them.
    pub async fn blob(&mut self, folder: &Blobs, sha256: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Tx::Sqlite(_) => match folder.get(sha256) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(StoreError::File {
                    path: folder.root().to_path_buf(),
                    source,
                }),
            },
            Tx::Postgres(t) => Ok(
                sqlx::query_scalar::<_, Vec<u8>>("SELECT bytes FROM blobs WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&mut **t)
                    .await?,
            ),
        }
    }
}

/// Document bytes and their SHA-256, from [`Db::stage_blobs`].
#[derive(Debug)]
pub struct Staged {
    pub sha256: String,
    pub bytes: Vec<u8>,
}

/// `true` when the row is new.
async fn insert_blob(conn: &mut sqlx::PgConnection, sha256: &str, bytes: &[u8], now_ms: i64) -> Result<bool> {
    let sql =
        "INSERT INTO blobs (sha256, size, bytes, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING";
    let added = sqlx::query(sql)
        .bind(sha256)
        .bind(bytes.len() as i64)
        .bind(bytes)
        .bind(now_ms)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(added == 1)
}

/// What [`Db::migrate_blobs`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlobMigration {
    /// Files whose bytes were added to the database (and then removed from the folder).
    pub moved: usize,
    /// Files whose bytes the database already held (removed from the folder).
    pub already: usize,
    /// Files left in place: their content does not hash to their name.
    pub left: usize,
}

impl Db {
    /// Hashes `files` and, on SQLite, writes (and syncs) them into `folder`, on a blocking
    /// thread and before the transaction that names them takes the write lock, so that no
    /// transition waits on a document's disk writes or its hashing (issue 17: a render's
    /// three files, synced one by one under the lock, were the longest waits of transitions
    /// with the workers on; hashed twice more under it, they still held the lock for
    /// milliseconds). The transaction then records them with [`Tx::put_staged`].
    pub async fn stage_blobs(&self, folder: &Blobs, files: Vec<Vec<u8>>) -> Result<Vec<Staged>> {
        let on_disk = matches!(self, Db::Sqlite(_));
        let folder = folder.clone();
        let root = folder.root().to_path_buf();
        tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .map(|bytes| {
                    let sha256 = if on_disk {
                        folder.put(&bytes)?
                    } else {
                        Blobs::hash(&bytes)
                    };
                    Ok(Staged { sha256, bytes })
                })
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("writing document files stopped: {e}")))?
        .map_err(|source| StoreError::File { path: root, source })
    }

    /// Moves the documents under `folder` into the database, each in its own
    /// transaction, removing a file once its bytes are committed. Running it again moves
    /// nothing. `None` on SQLite, which keeps documents in the folder.
    pub async fn migrate_blobs(&self, folder: &Blobs, now_ms: i64) -> Result<Option<BlobMigration>> {
        let Db::Postgres(pool, _) = self else {
            return Ok(None);
        };
        let io = |source| StoreError::File {
            path: folder.root().to_path_buf(),
            source,
        };
        let mut done = BlobMigration::default();
        let Ok(shards) = std::fs::read_dir(folder.root()) else {
            return Ok(Some(done)); // no folder: nothing was ever stored there
        };
        for shard in shards {
            let shard = shard.map_err(io)?.path();
            if !shard.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&shard).map_err(io)? {
                let path = file.map_err(io)?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                if name.starts_with('.') || !path.is_file() {
                    continue; // a write cut short (`.sha.pid.tmp`)
                }
                let bytes = std::fs::read(&path).map_err(io)?;
                if Blobs::hash(&bytes) != name {
                    done.left += 1;
                    continue;
                }
                let mut tx = pool.begin().await?;
                let added = insert_blob(&mut tx, &name, &bytes, now_ms).await?;
                tx.commit().await?;
                std::fs::remove_file(&path).map_err(io)?;
                if added {
                    done.moved += 1;
                } else {
                    done.already += 1;
                }
            }
        }
        Ok(Some(done))
    }
}
