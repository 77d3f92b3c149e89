//! `token.json`: the one place tokens live on disk. Writes are atomic and
//! durable (temp file 0600, fsync, rename, fsync of the directory), so a
//! crash at any moment leaves either the old token or the new one, whole.
//!
//! What lives here: the store, and [`keep`], what every way of logging in
//! does with a new token. It imports `util`, `config` and `oauth`.

pub mod keep;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::util::time::now_unix;

use serde_json::{Map, Value};

use crate::oauth::Token;

/// The file name of the stored token inside the token directory.
pub const TOKEN_FILE: &str = "token.json";
/// The directory, inside the token directory, of per-account tokens.
pub const ACCOUNTS_DIR: &str = "accounts";

/// A stored token document: the provider's fields plus ours.
pub type TokenDoc = Map<String, Value>;

/// The token directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

/// Why a stored token could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read (permissions, I/O).
    Io(PathBuf, io::Error),
    /// The file is not a JSON object.
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
            LoadError::Corrupt(path) => write!(f, "{} is not a JSON object", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

impl TokenStore {
    /// A store in `dir`; nothing is touched until the first save.
    pub fn new(dir: PathBuf) -> TokenStore {
        TokenStore { dir }
    }

    /// The token directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `token.json`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(TOKEN_FILE)
    }

    /// The document stored for `token`: its fields plus `obtained_at`, the
    /// Unix time now.
    pub fn document(token: Token) -> Value {
        let mut doc: Map<String, Value> = token.into_map();
        doc.insert("obtained_at".to_owned(), Value::from(now_unix()));
        Value::Object(doc)
    }

    /// Stores `doc` as `token.json`, creating the directory (0700) if needed.
    /// Returns only once the file and its directory entry are on disk.
    pub fn save(&self, doc: &Value) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(doc).expect("a JSON value serialises");
        bytes.push(b'\n');
        self.ensure_dir()?;
        save_atomic(&self.dir, TOKEN_FILE, &bytes)
    }

    /// The path of an account's token file.
    pub fn account_path(&self, login: &str) -> PathBuf {
        self.dir.join(ACCOUNTS_DIR).join(format!("{login}.json"))
    }

    /// Stores `doc` as `accounts/<login>.json` (0600, atomic, directory 0700).
    /// `login` must have passed [`crate::config::valid_login`].
    pub fn save_account(&self, login: &str, doc: &Value) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(doc).expect("a JSON value serialises");
        bytes.push(b'\n');
        self.ensure_dir()?;
        let accounts = self.dir.join(ACCOUNTS_DIR);
        if !accounts.is_dir() {
            DirBuilder::new().mode(0o700).create(&accounts)?;
        }
        save_atomic(&accounts, &format!("{login}.json"), &bytes)
    }

    /// Replaces the document at `path` (an account's file or `token.json`)
    /// with `doc`. `token.json` is the most recent token: it follows when
    /// it holds the same account.
    pub fn replace(&self, path: &Path, doc: &Value) -> io::Result<()> {
        let login =
            doc.get("login").and_then(Value::as_str).filter(|login| crate::config::valid_login(login));
        let Some(login) = login else { return self.save(doc) };
        self.save_account(login, doc)?;
        let current = if path == self.path() { None } else { self.load().ok().flatten() };
        if path == self.path()
            || current.as_ref().and_then(|c| c.get("login")).and_then(Value::as_str) == Some(login)
        {
            self.save(doc)?;
        }
        Ok(())
    }

    /// Every stored account, sorted by login.
    pub fn accounts(&self) -> Result<Vec<(String, TokenDoc)>, LoadError> {
        let dir = self.dir.join(ACCOUNTS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(LoadError::Io(dir, err)),
        };
        let mut accounts = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(login) = name.strip_suffix(".json") else { continue };
            if crate::config::valid_login(login) {
                if let Some(doc) = load_file(&entry.path())? {
                    accounts.push((login.to_owned(), doc));
                }
            }
        }
        accounts.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(accounts)
    }

    /// The stored accounts counted by what the Direct API last said of
    /// their tokens (`ok`, `error_58`, `unreachable`, `unchecked`).
    pub fn direct_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for (_, doc) in self.accounts().unwrap_or_default() {
            let label = doc
                .get("direct")
                .and_then(crate::oauth::direct::DirectCheck::from_json)
                .map_or_else(|| "unchecked".to_owned(), |check| check.label());
            *counts.entry(label).or_default() += 1;
        }
        counts
    }

    /// Reads `token.json`; `Ok(None)` when there is none yet.
    pub fn load(&self) -> Result<Option<Map<String, Value>>, LoadError> {
        load_file(&self.path())
    }

    /// Puts the directory (0700) and `token.json` (0600) back to private
    /// modes if someone loosened them, and removes temp files a crash left
    /// behind. Returns what it fixed, for the log; never the contents.
    pub fn fix_modes(&self) -> io::Result<Vec<String>> {
        use std::os::unix::fs::PermissionsExt;
        let mut fixed = Vec::new();
        let dir_meta = match fs::metadata(&self.dir) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(fixed),
            Err(err) => return Err(err),
        };
        if dir_meta.is_dir() && dir_meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
            fixed.push(format!(
                "{} was mode {:o}, now 0700",
                self.dir.display(),
                dir_meta.permissions().mode() & 0o777
            ));
        }
        let path = self.path();
        if let Ok(meta) = fs::metadata(&path) {
            if meta.permissions().mode() & 0o777 != 0o600 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
                fixed.push(format!(
                    "{} was mode {:o}, now 0600",
                    path.display(),
                    meta.permissions().mode() & 0o777
                ));
            }
        }
        let accounts = self.dir.join(ACCOUNTS_DIR);
        if let Ok(meta) = fs::metadata(&accounts) {
            if meta.is_dir() && meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(&accounts, fs::Permissions::from_mode(0o700))?;
                fixed.push(format!(
                    "{} was mode {:o}, now 0700",
                    accounts.display(),
                    meta.permissions().mode() & 0o777
                ));
            }
            for entry in fs::read_dir(&accounts)?.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_interrupted_write(&name) {
                    fs::remove_file(&path)?;
                    fixed.push(format!("removed {}, left by an interrupted write", path.display()));
                } else if let Ok(meta) = entry.metadata() {
                    if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
                        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
                        fixed.push(format!(
                            "{} was mode {:o}, now 0600",
                            path.display(),
                            meta.permissions().mode() & 0o777
                        ));
                    }
                }
            }
        }
        if dir_meta.is_dir() {
            for entry in fs::read_dir(&self.dir)?.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(&format!(".{TOKEN_FILE}.tmp.")) {
                    fs::remove_file(entry.path())?;
                    fixed.push(format!("removed {}, left by an interrupted write", entry.path().display()));
                }
            }
        }
        Ok(fixed)
    }

    /// Proves the directory can take a token: creates it if needed, then
    /// writes and removes a probe file.
    pub fn check_writable(&self) -> io::Result<()> {
        self.ensure_dir()?;
        save_atomic(&self.dir, ".write-check", b"")?;
        fs::remove_file(self.dir.join(".write-check"))
    }

    fn ensure_dir(&self) -> io::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        create_private_dir(&self.dir)
    }
}

/// When a stored token expires (`obtained_at + expires_in`), if it says.
pub fn expires_at(doc: &Map<String, Value>) -> Option<u64> {
    let obtained = doc.get("obtained_at")?.as_u64()?;
    let lifetime = doc.get("expires_in")?.as_u64()?;
    obtained.checked_add(lifetime)
}

/// Whole days from `now` until the token expires (negative once it has).
pub fn days_left(doc: &Map<String, Value>, now: u64) -> Option<i64> {
    expires_at(doc).map(|at| (at as i64 - now as i64).div_euclid(86_400))
}

/// A just-stored token's expiry for people: the date, and its lifetime in
/// whole days.
pub fn stored_expiry(doc: &Value) -> Option<(String, u64)> {
    let fields = doc.as_object()?;
    let lifetime = fields.get("expires_in")?.as_u64()?;
    Some((crate::util::time::date(expires_at(fields)?), lifetime / 86_400))
}

/// Reads a token document; `Ok(None)` when the file does not exist.
pub fn load_file(path: &Path) -> Result<Option<Map<String, Value>>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(LoadError::Io(path.to_owned(), err)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        _ => Err(LoadError::Corrupt(path.to_owned())),
    }
}

/// Creates `dir` (and its parents) as 0700, and puts an existing one back
/// to 0700 if someone loosened it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token(access: &str) -> Token {
        Token::from_json(serde_json::json!({"access_token": access, "token_type": "bearer"})).unwrap()
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().join("nested/tokens"));
        let doc = TokenStore::document(token("first"));
        store.save(&doc).unwrap();
        assert!(doc["obtained_at"].as_u64().unwrap() > 1_600_000_000);
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded["access_token"], "first");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        store.save(&TokenStore::document(token("second"))).unwrap();
        assert_eq!(store.load().unwrap().unwrap()["access_token"], "second");
        let leftovers: Vec<_> = fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(TOKEN_FILE)]);
    }

    #[test]
    fn loosened_modes_and_stale_temp_files_are_fixed() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().join("tokens"));
        assert!(store.fix_modes().unwrap().is_empty(), "a missing directory needs no fixing");
        store.save(&TokenStore::document(token("t"))).unwrap();
        fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(store.dir().join(".token.json.tmp.1.abc"), "partial").unwrap();
        let fixed = store.fix_modes().unwrap();
        assert_eq!(fixed.len(), 3, "{fixed:?}");
        assert!(fixed.iter().all(|line| !line.contains("\"t\"")));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(store.dir()), mode(&store.path())), (0o700, 0o600));
        assert!(!store.dir().join(".token.json.tmp.1.abc").exists());
        assert!(store.fix_modes().unwrap().is_empty());
        // Account files too.
        let doc = TokenStore::document(token("a"));
        store.save_account("alice", &doc).unwrap();
        let account = store.account_path("alice");
        fs::set_permissions(&account, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(store.dir().join("accounts/.bob.json.tmp.1.x"), "partial").unwrap();
        assert_eq!(store.fix_modes().unwrap().len(), 2);
        assert_eq!(mode(&account), 0o600);
    }

    #[test]
    fn missing_token_is_none_and_garbage_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().to_owned());
        assert!(store.load().unwrap().is_none());
        fs::write(store.path(), b"[1,2").unwrap();
        assert!(matches!(store.load(), Err(LoadError::Corrupt(_))));
    }
}
