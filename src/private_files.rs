//! Files only the service's own user may read: the data folder (the JWT secret, the
//! SQLite database, documents, the mail outbox) is `0700` and every file in it `0600`,
//! whatever the process umask. Files are created with that mode rather than fixed
//! afterwards, so there is no moment in which another user could open them; a folder
//! left open by an older version is closed at start ([`lock_down`]).
//!
//! Knows paths and modes only; what the files hold is its callers' business.

use std::{
    fs::{DirBuilder, File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// The mode of every folder under the data folder.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file under the data folder.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode `0700` (an existing folder keeps its mode).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Opens a new file for writing with mode `0600`, replacing one of the same name.
pub fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates an empty `0600` file at `path` unless one exists (a database about to be
/// created by a library that would use its own mode).
pub fn touch(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to a new `0600` file at `path`, on disk when this returns.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create_file(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates the data folder if needed and makes it and everything under it private:
/// folders `0700`, files `0600`. Symbolic links are left alone (their targets are
/// someone else's choice).
pub fn lock_down(root: &Path) -> io::Result<()> {
    create_dir(root)?;
    restrict(root)
}

fn restrict(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let wanted = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
    if meta.permissions().mode() & 0o777 != wanted {
        std::fs::set_permissions(path, Permissions::from_mode(wanted))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            restrict(&entry?.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_folder_is_closed_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join("blobs/ab")).unwrap();
        std::fs::write(root.join("jwt-secret"), "x").unwrap();
        std::fs::write(root.join("blobs/ab/abcd"), "x").unwrap();
        for p in [&root, &root.join("blobs"), &root.join("blobs/ab")] {
            std::fs::set_permissions(p, Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(root.join("jwt-secret"), Permissions::from_mode(0o644)).unwrap();
        lock_down(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("blobs/ab")), 0o700);
        assert_eq!(mode(&root.join("jwt-secret")), 0o600);
        assert_eq!(mode(&root.join("blobs/ab/abcd")), 0o600);
    }
}
