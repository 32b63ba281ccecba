//! The superuser's password and the cluster's `pg_hba.conf`. Takes the data
//! directory; gives the password, made once and kept in a file only the
//! service's account may read, and an `pg_hba.conf` that asks every
//! connection for it. Never logs or prints the password; runs no server.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Account, EmbeddedError, io};

/// Beside the cluster's own files in its data directory, so the password
/// moves, and is deleted, with the data it protects.
pub(super) const PASSWORD_FILE: &str = "widget-data.password";

/// Where the password file waits while a base backup of the cluster is
/// taken ([`crate::EmbeddedPostgres::start_standby`]): the server, which
/// sends the files, may not read ours, and PostgreSQL leaves every file
/// whose name starts with `pgsql_tmp` out of a base backup.
pub(super) const SET_ASIDE: &str = "pgsql_tmp.widget-data.password";

/// Every connection, over the socket or (should a listen address ever be
/// configured) loopback TCP, must prove it knows the password: no `trust`,
/// and no `peer`, which would let in any process of the server's account.
const HBA: &str = "\
# Written by widget-data on every start: every connection must give the
# superuser's password (scram-sha-256), kept in widget-data.password.
local all all scram-sha-256
local replication all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
";

/// The superuser's password; its Debug form hides it.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

impl Password {
    /// 244 random bits from the operating system's generator (two v4
    /// UUIDs), as 64 hex digits: nothing to escape in a URL or in SQL.
    pub fn generate() -> Self {
        Self(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A SQL string literal holding it.
    pub fn sql_literal(&self) -> String {
        format!("'{}'", self.0.replace('\'', "''"))
    }

    /// Percent-encoded for a URL's user-info (a hand-edited file may hold
    /// `@`, `:` or `/`).
    pub fn url_encoded(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(byte as char);
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }

    /// The file's text, one trailing newline allowed. Visible ASCII only:
    /// single-user mode ends a statement at a newline, and what cannot be
    /// typed cannot be given to psql either.
    fn parse(text: &str, file: &Path) -> Result<Self, EmbeddedError> {
        let password = text.strip_suffix('\n').unwrap_or(text);
        if password.is_empty() {
            return Err(refused(file, "it is empty".to_owned()));
        }
        if !password.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refused(
                file,
                "it holds something other than visible ASCII characters".to_owned(),
            ));
        }
        Ok(Self(password.to_owned()))
    }
}

pub(super) fn file(data_dir: &Path) -> PathBuf {
    data_dir.join(PASSWORD_FILE)
}

/// The password file of `data_dir` moved to [`SET_ASIDE`], and back when
/// dropped. A process that dies meanwhile leaves it aside; the next start
/// puts it back ([`put_back`]).
pub(super) struct SetAside {
    data_dir: PathBuf,
    moved: bool,
}

impl SetAside {
    pub fn new(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let moved = match std::fs::rename(file(data_dir), data_dir.join(SET_ASIDE)) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                return Err(io(format!("setting {} aside", file(data_dir).display()))(e));
            }
        };
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            moved,
        })
    }
}

impl Drop for SetAside {
    fn drop(&mut self) {
        if self.moved
            && let Err(e) = std::fs::rename(self.data_dir.join(SET_ASIDE), file(&self.data_dir))
        {
            tracing::warn!(error = %e, data_dir = %self.data_dir.display(),
                "could not put the password file back; the next start puts it back");
        }
    }
}

/// Puts back a password file left aside by a process that died during a
/// base backup, unless a password file is in place already.
pub(super) fn put_back(data_dir: &Path) -> Result<(), EmbeddedError> {
    let aside = data_dir.join(SET_ASIDE);
    if file(data_dir).exists() || std::fs::symlink_metadata(&aside).is_err() {
        return Ok(());
    }
    // Checked like the file itself when read next: only a rename here.
    std::fs::rename(&aside, file(data_dir)).map_err(io(format!("putting {} back", aside.display())))
}

/// The kept password, if there is a file; `uid` (the service's account)
/// must own it and no one else may read it. A symlink is refused, even one
/// swapped in while we look (as root, the `postgres` user owns the
/// directory it is in).
pub(super) fn read(file: &Path, uid: u32) -> Result<Option<Password>, EmbeddedError> {
    let before = match std::fs::symlink_metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("inspecting {}", file.display()))(e)),
    };
    if before.file_type().is_symlink() {
        return Err(refused(file, "it is a symbolic link".to_owned()));
    }
    let mut opened =
        std::fs::File::open(file).map_err(io(format!("opening {}", file.display())))?;
    let meta = opened
        .metadata()
        .map_err(io(format!("inspecting {}", file.display())))?;
    if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
        return Err(refused(file, "it was replaced while being read".to_owned()));
    }
    if !meta.is_file() {
        return Err(refused(file, "it is not a regular file".to_owned()));
    }
    if meta.uid() != uid {
        return Err(refused(
            file,
            format!("it is owned by uid {}, not {uid}", meta.uid()),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refused(file, format!("others may use it (mode {mode:o})")));
    }
    let mut text = String::new();
    opened
        .read_to_string(&mut text)
        .map_err(io(format!("reading {}", file.display())))?;
    Password::parse(&text, file).map(Some)
}

/// Keeps the password in `file`, 0600, owned by us (the service's account):
/// written to a new file first, then renamed over, so a crash leaves the old
/// one or the new one, never half of one.
pub(super) fn write(file: &Path, password: &Password) -> Result<(), EmbeddedError> {
    replace(file, &format!("{}\n", password.expose()), None)
}

/// Whether `pg_hba.conf` is ours: anything else (`trust`, from an older
/// version or a hand edit) is replaced before the server starts.
pub(super) fn hba_is_current(data_dir: &Path) -> bool {
    std::fs::read_to_string(data_dir.join("pg_hba.conf")).is_ok_and(|text| text == HBA)
}

/// Writes our `pg_hba.conf`, owned by the server's account, which reads it.
pub(super) fn write_hba(data_dir: &Path, account: Account) -> Result<(), EmbeddedError> {
    replace(&data_dir.join("pg_hba.conf"), HBA, account.hand_to)
}

/// Writes `text` to a file made fresh beside `file` (O_EXCL: never through
/// a planted symlink), mode 0600, handed to `owner` if given, then renamed
/// over `file`.
fn replace(file: &Path, text: &str, owner: Option<(u32, u32)>) -> Result<(), EmbeddedError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = file.with_file_name(super::socket::fresh_name(&format!(".{name}.")));
    let written = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&temp, Some(uid), Some(gid))?;
        }
        std::fs::rename(&temp, file)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io(format!("writing {}", file.display()))(e)
    })
}

fn refused(file: &Path, problem: String) -> EmbeddedError {
    EmbeddedError::PasswordFile {
        path: file.to_path_buf(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::super::effective_uid;
    use super::super::tests::scratch;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_password_is_long_random_and_needs_no_escaping() {
        let one = Password::generate();
        assert_eq!(one.expose().len(), 64);
        assert!(one.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(one, Password::generate());
        assert_eq!(one.url_encoded(), one.expose());
        assert_eq!(format!("{one:?}"), "Password(<hidden>)");
    }

    #[test]
    fn a_hand_written_password_is_escaped_for_urls_and_sql() {
        let password = Password("p@ss:w/o'rd%".to_owned());
        assert_eq!(password.url_encoded(), "p%40ss%3Aw%2Fo%27rd%25");
        assert_eq!(password.sql_literal(), "'p@ss:w/o''rd%'");
    }

    #[test]
    fn the_kept_password_is_read_back_from_a_private_file() {
        let dir = scratch("password");
        std::fs::create_dir_all(&dir).unwrap();
        let file = file(&dir);
        let uid = effective_uid().unwrap();
        assert_eq!(read(&file, uid).unwrap(), None, "no file yet");
        let password = Password::generate();
        write(&file, &password).unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600));
        assert_eq!(read(&file, uid).unwrap(), Some(password.clone()));
        // A second write replaces it, and leaves no temporary file.
        let other = Password::generate();
        write(&file, &other).unwrap();
        assert_eq!(read(&file, uid).unwrap(), Some(other));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_password_file_others_may_read_or_a_symlink_or_a_strangers_is_refused() {
        let dir = scratch("password-refused");
        std::fs::create_dir_all(&dir).unwrap();
        let file = file(&dir);
        let uid = effective_uid().unwrap();
        write(&file, &Password::generate()).unwrap();

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(&file, uid).unwrap_err().to_string();
        assert!(
            err.contains("mode 644") && err.contains(PASSWORD_FILE),
            "{err}"
        );

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read(&file, uid + 1).unwrap_err().to_string();
        assert!(err.contains(&format!("owned by uid {uid}")), "{err}");

        let real = dir.join("elsewhere");
        std::fs::rename(&file, &real).unwrap();
        std::os::unix::fs::symlink(&real, &file).unwrap();
        let err = read(&file, uid).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");

        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "two\nlines\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read(&file, uid).unwrap_err().to_string();
        assert!(err.contains("visible ASCII"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pg_hba_conf_asks_every_connection_for_the_password() {
        assert!(!HBA.lines().any(|l| {
            let l = l.trim_start();
            !l.starts_with('#') && (l.contains("trust") || l.contains("peer"))
        }));
        assert!(
            HBA.lines()
                .filter(|l| !l.starts_with('#'))
                .all(|l| l.ends_with(" scram-sha-256"))
        );
        let dir = scratch("hba");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pg_hba.conf"), "local all all trust\n").unwrap();
        assert!(!hba_is_current(&dir));
        let account = Account::of_cluster(false).unwrap();
        write_hba(&dir, account).unwrap();
        assert!(hba_is_current(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
