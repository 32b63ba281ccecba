//! Where a cluster lives. Takes the directory asked for; gives the data
//! directory and, as root, whether the cluster had to move to a place the
//! `postgres` user can reach. Creates directories and hands them to that
//! user; runs no server.

use std::fs::{DirBuilder, Metadata};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{EmbeddedError, OS_USER, as_cluster_user, io, run};

/// As root, clusters the `postgres` user could not reach where they were
/// asked for live under `<this>/clusters`.
pub(super) const RELOCATION_ROOT: &str = "/var/lib/widget-data";

#[derive(Clone, Debug)]
pub(super) struct Location {
    pub data_dir: PathBuf,
    /// The directory asked for, when the cluster lives elsewhere.
    pub relocated_from: Option<PathBuf>,
    /// PostgreSQL's binaries run as the `postgres` user.
    pub as_root: bool,
}

impl Location {
    /// Makes (or checks) the directories for a cluster asked for at `dir`.
    pub fn prepare(dir: &Path, as_root: bool) -> Result<Self, EmbeddedError> {
        Self::prepare_in(dir, as_root, Path::new(RELOCATION_ROOT))
    }

    fn prepare_in(
        dir: &Path,
        as_root: bool,
        relocation_root: &Path,
    ) -> Result<Self, EmbeddedError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let requested = dir
            .canonicalize()
            .map_err(io(format!("resolving {}", dir.display())))?;
        let (data_dir, relocated_from) = if as_root && !parent_reachable(&requested)? {
            // A cluster made there earlier would be silently left behind.
            if requested.join("PG_VERSION").exists() {
                return Err(EmbeddedError::UnreachableCluster { path: requested });
            }
            (
                relocated_home(relocation_root, &requested)?,
                Some(requested),
            )
        } else {
            if as_root {
                chown_to_postgres(&requested)?;
            }
            (requested, None)
        };
        Ok(Self {
            data_dir,
            relocated_from,
            as_root,
        })
    }
}

/// Whether the `postgres` user can reach entries of `dir`'s parent (and so
/// `dir`, once it owns it).
fn parent_reachable(dir: &Path) -> Result<bool, EmbeddedError> {
    let Some(parent) = dir.parent() else {
        return Ok(true);
    };
    let mut probe = as_cluster_user(true, Path::new("test"));
    probe.arg("-x").arg(parent);
    let status = probe.status().map_err(io(format!(
        "checking whether `{OS_USER}` can reach {}",
        parent.display()
    )))?;
    Ok(status.success())
}

/// `<root>/clusters/<name>-<hash of the path>`: the same path asked for
/// always gets the same place, so a second start finds its data.
fn relocated_home(root: &Path, requested: &Path) -> Result<PathBuf, EmbeddedError> {
    let clusters = root.join("clusters");
    // Root-owned and not writable by others: nobody but root can swap a
    // directory under us between the check and the server's use of it.
    root_owned_dir(root)?;
    root_owned_dir(&clusters)?;
    let name = requested
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cluster".to_owned());
    let home = clusters.join(format!(
        "{name}-{:016x}",
        fnv1a(requested.as_os_str().as_encoded_bytes())
    ));
    postgres_owned_dir(&home)?;
    Ok(home)
}

fn root_owned_dir(dir: &Path) -> Result<(), EmbeddedError> {
    match DirBuilder::new().mode(0o755).create(dir) {
        // The umask may have taken bits away.
        Ok(()) => return set_mode(dir, 0o755),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(format!("creating {}", dir.display()))(e)),
    }
    let meta = existing_dir(dir)?;
    if meta.uid() != 0 {
        return Err(unsafe_dir(
            dir,
            format!("it is owned by uid {}, not root", meta.uid()),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(
            dir,
            format!("others may write to it (mode {mode:o})"),
        ));
    }
    if mode & 0o001 == 0 {
        return Err(unsafe_dir(
            dir,
            format!("the `{OS_USER}` user cannot enter it (mode {mode:o})"),
        ));
    }
    Ok(())
}

fn postgres_owned_dir(dir: &Path) -> Result<(), EmbeddedError> {
    let (uid, gid) = os_user_ids()?;
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // Just made by us, in a directory only root may write to: not
            // a symlink, so lchown and chmod act on it.
            std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
                .map_err(io(format!("handing {} to `{OS_USER}`", dir.display())))?;
            return set_mode(dir, 0o700);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(format!("creating {}", dir.display()))(e)),
    }
    let meta = existing_dir(dir)?;
    if meta.uid() != uid {
        return Err(unsafe_dir(
            dir,
            format!("it is owned by uid {}, not `{OS_USER}` ({uid})", meta.uid()),
        ));
    }
    // What PostgreSQL itself accepts for a data directory: 0700 or 0750.
    let mode = meta.mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(unsafe_dir(
            dir,
            format!("others may use it (mode {mode:o})"),
        ));
    }
    Ok(())
}

/// The directory's own metadata (not a symlink's target).
fn existing_dir(dir: &Path) -> Result<Metadata, EmbeddedError> {
    let meta =
        std::fs::symlink_metadata(dir).map_err(io(format!("inspecting {}", dir.display())))?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir(dir, "it is a symbolic link".to_owned()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir(dir, "it is not a directory".to_owned()));
    }
    Ok(meta)
}

fn unsafe_dir(path: &Path, problem: String) -> EmbeddedError {
    EmbeddedError::UnsafeDirectory {
        path: path.to_path_buf(),
        problem,
    }
}

fn set_mode(dir: &Path, mode: u32) -> Result<(), EmbeddedError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("setting the mode of {}", dir.display())))
}

/// The `postgres` user's uid and gid.
pub(super) fn os_user_ids() -> Result<(u32, u32), EmbeddedError> {
    let id = |flag: &str| -> Result<u32, EmbeddedError> {
        let out = Command::new("id")
            .arg(flag)
            .arg(OS_USER)
            .output()
            .map_err(io(format!("looking up the `{OS_USER}` user")))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| EmbeddedError::Command {
                command: format!("id {flag} {OS_USER}"),
                output: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
    };
    Ok((id("-u")?, id("-g")?))
}

fn chown_to_postgres(dir: &Path) -> Result<(), EmbeddedError> {
    let (uid, _) = os_user_ids()?;
    let owner = std::fs::symlink_metadata(dir)
        .map_err(io(format!("inspecting {}", dir.display())))?
        .uid();
    // A directory the `postgres` user owns already holds the server's files
    // as they should be, and the password file, which stays the service's.
    if owner != uid {
        let mut chown = Command::new("chown");
        chown.arg("-R").arg(format!("{OS_USER}:")).arg(dir);
        run(chown, "chown")?;
    }
    // Its parent is reachable (checked before), so a failure here has
    // another cause, such as a read-only mount.
    let mut probe = as_cluster_user(true, Path::new("test"));
    probe.arg("-w").arg(dir);
    if run(probe, "access check").is_err() {
        return Err(EmbeddedError::Command {
            command: "access check".into(),
            output: format!(
                "the `{OS_USER}` user cannot write {} although it owns it; \
                 set DATA_DIR to a directory it can write (e.g. under /tmp or /var/lib)",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// FNV-1a: stable across Rust versions and machines, unlike std's hasher,
/// so a directory's name never changes under its data.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::super::running_as_root;
    use super::super::tests::scratch;
    use super::*;

    /// A root-only directory and, inside it, the path asked for.
    fn unreachable(name: &str) -> (PathBuf, PathBuf) {
        let private = scratch(name);
        std::fs::create_dir_all(&private).unwrap();
        set_mode(&private, 0o700).unwrap();
        let asked = private.join("pg");
        (private, asked)
    }

    fn mode(path: &Path) -> (u32, u32) {
        let meta = std::fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.mode() & 0o7777)
    }

    #[test]
    fn the_name_hash_is_stable() {
        // A change here would strand every relocated cluster's data.
        assert_eq!(
            fnv1a(b"/root/widget-data/.data/postgres"),
            0xe0ba_ed31_3079_f327
        );
    }

    #[test]
    fn as_root_an_unreachable_directory_moves_to_one_reachable_place_made_safely() {
        if !running_as_root() {
            return;
        }
        let (private, asked) = unreachable("moved");
        let root = scratch("relocation-root");
        std::fs::create_dir_all(&root).unwrap();
        let first = Location::prepare_in(&asked, true, &root).unwrap();
        let asked = asked.canonicalize().unwrap();
        assert_eq!(first.relocated_from.as_deref(), Some(asked.as_path()));
        let name = first.data_dir.file_name().unwrap().to_string_lossy();
        assert_eq!(
            first.data_dir.parent(),
            Some(root.join("clusters").as_path())
        );
        assert!(name.starts_with("pg-") && name.len() == 3 + 16, "{name}");
        assert_eq!(mode(&root.join("clusters")), (0, 0o755));
        assert_eq!(mode(&first.data_dir), (os_user_ids().unwrap().0, 0o700));
        // The postgres user can write there; it could not where asked.
        let mut probe = as_cluster_user(true, Path::new("test"));
        probe.arg("-w").arg(&first.data_dir);
        assert!(probe.status().unwrap().success());

        let again = Location::prepare_in(&asked, true, &root).unwrap();
        assert_eq!(again.data_dir, first.data_dir, "the same place each time");
        // Not root: nothing moves (the server runs as us).
        let mine = Location::prepare_in(&asked, false, &root).unwrap();
        assert_eq!((mine.data_dir, mine.relocated_from), (asked, None));
        let _ = std::fs::remove_dir_all(&private);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn as_root_a_relocation_refuses_a_symlink_or_a_directory_of_someone_else() {
        if !running_as_root() {
            return;
        }
        let (private, asked) = unreachable("refused");
        let root = scratch("relocation-refused");
        std::fs::create_dir_all(&root).unwrap();
        let home = Location::prepare_in(&asked, true, &root).unwrap().data_dir;

        // A symlink where the cluster goes (to somewhere an attacker chose).
        std::fs::remove_dir(&home).unwrap();
        std::os::unix::fs::symlink(&private, &home).unwrap();
        let err = Location::prepare_in(&asked, true, &root)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("symbolic link") && err.contains(&*home.to_string_lossy()),
            "{err}"
        );

        // A directory of root's, not the postgres user's.
        std::fs::remove_file(&home).unwrap();
        std::fs::create_dir(&home).unwrap();
        let err = Location::prepare_in(&asked, true, &root)
            .unwrap_err()
            .to_string();
        assert!(err.contains("owned by uid 0"), "{err}");

        // A parent others may write to.
        std::fs::remove_dir(&home).unwrap();
        set_mode(&root.join("clusters"), 0o777).unwrap();
        let err = Location::prepare_in(&asked, true, &root)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("others may write") && err.contains("clusters"),
            "{err}"
        );
        assert!(!home.exists(), "nothing made under an unsafe parent");
        let _ = std::fs::remove_dir_all(&private);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn as_root_a_cluster_already_in_an_unreachable_place_is_not_left_behind() {
        if !running_as_root() {
            return;
        }
        let (private, asked) = unreachable("stranded");
        std::fs::create_dir_all(&asked).unwrap();
        std::fs::write(asked.join("PG_VERSION"), "15\n").unwrap();
        let root = scratch("relocation-stranded");
        let err = Location::prepare_in(&asked, true, &root)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot reach") && err.contains("/pg"), "{err}");
        assert!(!root.exists(), "no empty cluster made elsewhere");
        let _ = std::fs::remove_dir_all(&private);
    }
}
