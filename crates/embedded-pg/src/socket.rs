//! The directory of the server's unix socket. Takes the data directory;
//! gives a directory only the cluster's account may enter: the data
//! directory itself when its path is short enough and it is private (0700),
//! else a directory made fresh under /tmp. Makes, checks and removes
//! directories; runs no server.

use std::fs::{DirBuilder, Metadata};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Account, EmbeddedError, io};

/// Unix socket paths are limited to 107 bytes; `/.s.PGSQL.5432` adds 14 and
/// the lock file beside it 5 more: keep the whole path under 100.
const MAX_SOCKET_DIR: usize = 80;
/// Where fresh directories go. Not temp_dir(): TMPDIR may be long itself.
pub(super) const FRESH_PARENT: &str = "/tmp";
/// Names tried before giving up. 122 random bits each: one collision is
/// already someone making our names on purpose.
const ATTEMPTS: usize = 8;

/// Where the server's socket goes, checked before every start.
#[derive(Clone, Debug)]
pub(super) struct SocketDir {
    path: PathBuf,
    /// The uid that must own it: the account running the server.
    uid: u32,
    /// Device and inode of a directory made for this cluster (ours to
    /// remove when the cluster stops for good); `None` for the data
    /// directory.
    made: Option<(u64, u64)>,
}

impl SocketDir {
    /// The data directory when it is short enough and private, else a fresh
    /// directory under /tmp.
    pub fn prepare(data_dir: &Path, account: Account) -> Result<Self, EmbeddedError> {
        Self::prepare_in(data_dir, account, Path::new(FRESH_PARENT))
    }

    // A socket inside a private data directory is exactly as private as
    // the data beside it, keeps one path across starts (the URL printed
    // last time still works) and leaves nothing behind after a crash, so
    // it is preferred; a directory made fresh serves only where the data
    // directory's path is too long for a socket, or the directory is not
    // 0700 (PostgreSQL also accepts 0750, which would let its group in).
    fn prepare_in(data_dir: &Path, account: Account, parent: &Path) -> Result<Self, EmbeddedError> {
        if data_dir.as_os_str().len() <= MAX_SOCKET_DIR
            && private_dir(data_dir, account.uid).is_ok()
        {
            return Ok(Self {
                path: data_dir.to_path_buf(),
                uid: account.uid,
                made: None,
            });
        }
        let (path, made) = fresh_private_dir(parent, account, || fresh_name("wd-pg-"))?;
        Ok(Self {
            path,
            uid: account.uid,
            made: Some(made),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses to start a server unless the directory is still the private
    /// one chosen: not a symlink, owned by the server's account, mode 0700,
    /// and, when made fresh, the very directory made then.
    pub fn verify(&self) -> Result<(), EmbeddedError> {
        let meta = private_dir(&self.path, self.uid)?;
        if let Some(made) = self.made
            && (meta.dev(), meta.ino()) != made
        {
            return Err(refused(
                &self.path,
                "it is not the directory made for this cluster (it was replaced)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Removes a directory made for the socket, once the cluster stopped
    /// for good; the data directory is left alone.
    pub fn remove(&self) -> Result<(), EmbeddedError> {
        let Some(made) = self.made else {
            return Ok(());
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() && (meta.dev(), meta.ino()) == made => {
                std::fs::remove_dir_all(&self.path)
                    .map_err(io(format!("removing {}", self.path.display())))
            }
            // Gone already, or no longer the directory we made: whatever is
            // there now is not ours to delete.
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("inspecting {}", self.path.display()))(e)),
        }
    }
}

/// A name no one can guess: `<prefix><32 hex digits>`.
pub(super) fn fresh_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Makes `<parent>/<name()>`, a directory that did not exist before, mode
/// 0700, owned by `account`; returns it with its device and inode.
pub(super) fn fresh_private_dir(
    parent: &Path,
    account: Account,
    mut name: impl FnMut() -> String,
) -> Result<(PathBuf, (u64, u64)), EmbeddedError> {
    shared_parent_is_sticky(parent)?;
    for _ in 0..ATTEMPTS {
        let dir = parent.join(name());
        // mkdir fails on any existing entry, a symlink or a directory made
        // in advance by someone else included: we only ever use a directory
        // we made ourselves, and try another name instead.
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(format!("creating {}", dir.display()))(e)),
        }
        if let Some((uid, gid)) = account.hand_to {
            // lchown acts on the entry itself, never a symlink's target.
            if let Err(e) = std::os::unix::fs::lchown(&dir, Some(uid), Some(gid)) {
                let _ = std::fs::remove_dir(&dir);
                return Err(io(format!("handing {} to uid {uid}", dir.display()))(e));
            }
        }
        let meta = private_dir(&dir, account.uid)?;
        return Ok((dir, (meta.dev(), meta.ino())));
    }
    Err(refused(
        parent,
        format!("{ATTEMPTS} fresh names in it were all taken already"),
    ))
}

/// In a directory others may write to, only the sticky bit stops them
/// renaming our directory away and putting one of theirs in its place.
fn shared_parent_is_sticky(parent: &Path) -> Result<(), EmbeddedError> {
    let meta = std::fs::metadata(parent).map_err(io(format!("inspecting {}", parent.display())))?;
    let mode = meta.mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(refused(
            parent,
            format!(
                "anyone may write to it and it is not sticky (mode {:o})",
                mode & 0o7777
            ),
        ));
    }
    Ok(())
}

/// The directory's own metadata (never a symlink's target), if it is a
/// directory owned by `uid` that no one else may enter.
fn private_dir(dir: &Path, uid: u32) -> Result<Metadata, EmbeddedError> {
    let meta =
        std::fs::symlink_metadata(dir).map_err(io(format!("inspecting {}", dir.display())))?;
    if meta.file_type().is_symlink() {
        return Err(refused(dir, "it is a symbolic link".to_owned()));
    }
    if !meta.is_dir() {
        return Err(refused(dir, "it is not a directory".to_owned()));
    }
    if meta.uid() != uid {
        return Err(refused(
            dir,
            format!("it is owned by uid {}, not {uid}", meta.uid()),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o700 {
        return Err(refused(dir, format!("its mode is {mode:o}, not 700")));
    }
    Ok(meta)
}

fn refused(path: &Path, problem: String) -> EmbeddedError {
    EmbeddedError::PrivateDirectory {
        path: path.to_path_buf(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::scratch;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A sticky, world-writable parent like /tmp, of the test's own.
    fn shared_parent(name: &str) -> PathBuf {
        let parent = scratch(name);
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o1777)).unwrap();
        parent
    }

    fn account() -> Account {
        Account::of_cluster(super::super::running_as_root()).unwrap()
    }

    fn owner_and_mode(path: &Path) -> (u32, u32) {
        let meta = std::fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.mode() & 0o7777)
    }

    #[test]
    fn a_fresh_directory_is_never_one_made_in_advance_nor_a_symlink() {
        let parent = shared_parent("fresh");
        // What an attacker would have prepared at the names we try first.
        let planted = parent.join("planted");
        std::fs::create_dir(&planted).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
        let elsewhere = scratch("fresh-target");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let link = parent.join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let mut names = ["planted", "link", "ours"].into_iter().map(str::to_owned);

        let account = account();
        let (dir, _) = fresh_private_dir(&parent, account, || names.next().unwrap()).unwrap();
        assert_eq!(dir, parent.join("ours"));
        assert_eq!(owner_and_mode(&dir), (account.uid, 0o700));
        // What was planted is untouched and unused.
        assert_eq!(owner_and_mode(&planted).1, 0o777);
        assert!(std::fs::read_link(&link).is_ok());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&parent);
        let _ = std::fs::remove_dir_all(&elsewhere);
    }

    #[test]
    fn when_every_name_is_taken_no_directory_is_used() {
        let parent = shared_parent("taken");
        std::fs::create_dir(parent.join("taken")).unwrap();
        let err = fresh_private_dir(&parent, account(), || "taken".to_owned())
            .unwrap_err()
            .to_string();
        assert!(err.contains("all taken"), "{err}");
        assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&parent);
    }

    #[test]
    fn a_parent_anyone_may_write_without_the_sticky_bit_is_refused() {
        let parent = scratch("not-sticky");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = fresh_private_dir(&parent, account(), || "x".to_owned())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not sticky"), "{err}");
        assert!(!parent.join("x").exists());
        let _ = std::fs::remove_dir_all(&parent);
    }

    #[test]
    fn a_short_private_data_directory_holds_the_socket_and_others_get_a_fresh_one() {
        let account = account();
        let parent = shared_parent("socket-parent");
        let data = scratch("socket-data");
        std::fs::create_dir_all(&data).unwrap();
        if let Some((uid, gid)) = account.hand_to {
            std::os::unix::fs::lchown(&data, Some(uid), Some(gid)).unwrap();
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = SocketDir::prepare_in(&data, account, &parent).unwrap();
        assert_eq!((socket.path(), socket.made), (data.as_path(), None));
        socket.verify().unwrap();

        // Its group may enter: the socket goes elsewhere.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
        let socket = SocketDir::prepare_in(&data, account, &parent).unwrap();
        assert_eq!(socket.path().parent(), Some(parent.as_path()));
        assert_eq!(owner_and_mode(socket.path()), (account.uid, 0o700));
        socket.remove().unwrap();
        assert!(!socket.path().exists());

        // Too long a path: elsewhere too.
        let long = data.join("x".repeat(90));
        std::fs::create_dir(&long).unwrap();
        let socket = SocketDir::prepare_in(&long, account, &parent).unwrap();
        assert!(socket.made.is_some() && !socket.path().starts_with(&data));
        socket.remove().unwrap();
        let _ = std::fs::remove_dir_all(&parent);
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn a_socket_directory_replaced_or_opened_up_is_refused_and_not_removed() {
        let account = account();
        let parent = shared_parent("replaced");
        let long = scratch("replaced-data").join("y".repeat(90));
        let socket = SocketDir::prepare_in(&long, account, &parent).unwrap();
        socket.verify().unwrap();

        std::fs::set_permissions(socket.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = socket.verify().unwrap_err().to_string();
        assert!(err.contains("mode is 755"), "{err}");

        // Another directory of the same name and owner (made while the
        // first still exists, so it cannot reuse its inode number).
        let other = parent.join("other");
        std::fs::create_dir(&other).unwrap();
        if let Some((uid, gid)) = account.hand_to {
            std::os::unix::fs::lchown(&other, Some(uid), Some(gid)).unwrap();
        }
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::remove_dir(socket.path()).unwrap();
        std::fs::rename(&other, socket.path()).unwrap();
        let err = socket.verify().unwrap_err().to_string();
        assert!(err.contains("replaced"), "{err}");
        socket.remove().unwrap();
        assert!(socket.path().exists(), "not ours: left alone");

        // A symlink in its place.
        std::fs::remove_dir(socket.path()).unwrap();
        std::os::unix::fs::symlink(&parent, socket.path()).unwrap();
        let err = socket.verify().unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let _ = std::fs::remove_dir_all(&parent);
    }
}
