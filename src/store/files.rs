//! The file operations under the store: an atomic and durable write, a
//! read that tells "none yet" from "broken", private directories, and
//! putting a loosened mode back without following a link.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::TokenDoc;

/// Why a stored token could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read (permissions, I/O).
    Io(PathBuf, io::Error),
    /// The file is not a JSON object with an `access_token`.
    Corrupt(PathBuf),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(path, err) if err.kind() == io::ErrorKind::PermissionDenied => write!(
                f,
                "cannot read {}: {err} (run as the service user, e.g. with sudo -u yandex-token)",
                path.display()
            ),
            LoadError::Io(path, err) => write!(f, "cannot read {}: {err}", path.display()),
            LoadError::Corrupt(path) => {
                write!(f, "{} is damaged: not the JSON object expected here", path.display())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads a token document; `Ok(None)` when the file does not exist.
pub fn load_file(path: &Path) -> Result<Option<TokenDoc>, LoadError> {
    match load_object(path)? {
        Some(map) => TokenDoc::from_map(map).map(Some).ok_or_else(|| LoadError::Corrupt(path.to_owned())),
        None => Ok(None),
    }
}

/// Reads a file holding one JSON object (a token, ACME's cached
/// certificate); `Ok(None)` when the file does not exist.
pub fn load_object(path: &Path) -> Result<Option<serde_json::Map<String, serde_json::Value>>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(LoadError::Io(path.to_owned(), err)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        _ => Err(LoadError::Corrupt(path.to_owned())),
    }
}

/// Creates `dir` (and its parents) as 0700, and puts an existing one back
/// to 0700 if someone loosened it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates the directory `dir` (0700) unless it is there; two processes
/// creating it at once both succeed.
pub fn create_dir_once(dir: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Puts `path` back to `mode` when its group or others bits are set (a
/// file that is not exactly 0600 counts too), without following a link:
/// the path is opened with `O_NOFOLLOW` and changed through that handle,
/// so a link swapped in meanwhile is never followed. Returns what it
/// changed, for the log; `None` when nothing needed fixing or the path is
/// missing or a link. `follow` is for the configured token directory only.
pub fn ensure_private_mode(path: &Path, mode: u32, follow: bool) -> io::Result<Option<String>> {
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let file = match OpenOptions::new().read(true).custom_flags(nofollow | libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a link: ELOOP. Left alone.
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(err) => return Err(err),
    };
    let meta = file.metadata()?;
    let current = meta.permissions().mode() & 0o777;
    let loose = if meta.is_dir() { current & 0o077 != 0 } else { meta.is_file() && current != mode };
    if !loose {
        return Ok(None);
    }
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(Some(format!("{} was mode {current:o}, now {mode:04o}", path.display())))
}

/// Whether a file name is one of [`save_atomic`]'s temp files, which only
/// an interrupted write leaves behind.
pub fn is_interrupted_write(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp.")
}

/// Writes `bytes` to `dir/name` atomically: a new 0600 temp file in the same
/// directory, fsync, rename over the target, fsync of the directory.
pub fn save_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp =
        dir.join(format!(".{name}.tmp.{}.{}", std::process::id(), crate::util::encoding::random_urlsafe(6)));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        fs::remove_file(&tmp).ok();
    }
    result
}
