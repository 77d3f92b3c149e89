//! `token.json` and `accounts/LOGIN.json`: the one place tokens live on
//! disk. Writes are atomic and durable (temp file 0600, fsync, rename,
//! fsync of the directory), so a crash at any moment leaves either the old
//! token or the new one, whole. Every read-modify-write holds the
//! directory's lock ([`StoreLock`]) and compares before it writes: the
//! newest token Yandex issued wins, and a file that changed while a
//! process was on the network is never overwritten with what it loaded.
//!
//! What lives here: the store, the typed document ([`TokenDoc`]), the
//! lock and the file operations. No network: it imports `util`, `config`
//! and `oauth`'s types only.

mod document;
mod files;
mod lock;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use document::TokenDoc;
pub use files::{LoadError, create_private_dir, is_interrupted_write, load_file, load_object, save_atomic};
pub use lock::StoreLock;

/// The file name of the most recent token inside the token directory.
pub const TOKEN_FILE: &str = "token.json";
/// The directory, inside the token directory, of per-account tokens.
pub const ACCOUNTS_DIR: &str = "accounts";

/// The token directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

/// How a freshly issued token came: it decides whether `token.json`, the
/// most recent login, follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// A login (any flow): `token.json` becomes this token.
    Login,
    /// A refresh: `token.json` follows only when it holds the same account.
    Refresh,
}

/// Where a freshly issued token went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The file that holds it (the account's, or `token.json`).
    pub file: PathBuf,
    /// `true` when a token of the same account issued later was already
    /// on disk: that one stays, and this one was not written.
    pub superseded: bool,
}

/// The stored accounts that could be read, and the files that could not.
#[derive(Debug, Default)]
pub struct Accounts {
    /// Each readable account, sorted by login.
    pub found: Vec<(String, TokenDoc)>,
    /// Each file skipped, with why.
    pub skipped: Vec<LoadError>,
}

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

    /// The path of an account's token file.
    pub fn account_path(&self, login: &str) -> PathBuf {
        self.dir.join(ACCOUNTS_DIR).join(format!("{login}.json"))
    }

    /// The file `--login` names: the account's, or `token.json` without one.
    pub fn file_of(&self, login: Option<&str>) -> PathBuf {
        login.map_or_else(|| self.path(), |login| self.account_path(login))
    }

    /// The file a document belongs in: its account's, or `token.json`
    /// when the account is not known.
    pub fn home_of(&self, doc: &TokenDoc) -> PathBuf {
        match doc.login.as_deref().filter(|login| crate::config::valid_login(login)) {
            Some(login) => self.account_path(login),
            None => self.path(),
        }
    }

    /// Takes the directory's lock, creating the directory (0700) first if
    /// needed. Blocks while another holder (any process) has it.
    pub fn lock(&self) -> io::Result<StoreLock> {
        self.ensure_dir()?;
        StoreLock::acquire(&self.dir)
    }

    /// Reads `token.json`; `Ok(None)` when there is none yet.
    pub fn load(&self) -> Result<Option<TokenDoc>, LoadError> {
        load_file(&self.path())
    }

    /// Stores a token Yandex just issued, under the lock: see
    /// [`TokenStore::keep_issued_locked`].
    pub fn keep_issued(&self, doc: &TokenDoc, how: Issued) -> io::Result<Saved> {
        let lock = self.lock()?;
        self.keep_issued_locked(&lock, doc, how)
    }

    /// Stores a token Yandex just issued, by the rule *the newest token
    /// wins*: the account's file takes it unless it holds one issued later
    /// (then nothing is written, and the answer says so); `token.json`
    /// takes it on a login, and on a refresh when it holds the same
    /// account, again unless it holds a later one. A file that cannot be
    /// parsed is replaced: a fresh token is worth more than a broken file.
    pub fn keep_issued_locked(&self, _lock: &StoreLock, doc: &TokenDoc, how: Issued) -> io::Result<Saved> {
        let bytes = doc.to_bytes();
        let newer = |current: &Result<Option<TokenDoc>, LoadError>| matches!(current, Ok(Some(current)) if current.issued_us() > doc.issued_us());
        let login = doc.login.as_deref().filter(|login| crate::config::valid_login(login));
        if let Some(login) = login {
            let path = self.account_path(login);
            let current = load_file(&path);
            if let Err(LoadError::Io(_, err)) = current {
                return Err(err);
            }
            if newer(&current) {
                return Ok(Saved { file: path, superseded: true });
            }
            let accounts = self.dir.join(ACCOUNTS_DIR);
            files::create_dir_once(&accounts)?;
            save_atomic(&accounts, &format!("{login}.json"), &bytes)?;
        }
        // token.json: a later token there stays; otherwise a login, or a
        // token of no known account, takes it, and a refresh only when it
        // holds the same account.
        let current = self.load();
        if newer(&current) {
            return Ok(Saved { file: self.home_of(doc), superseded: login.is_none() });
        }
        let same_account = match &current {
            Ok(Some(current)) => current.login.as_deref() == login,
            Ok(None) | Err(LoadError::Corrupt(_)) => true,
            Err(LoadError::Io(_, _)) => false,
        };
        if login.is_none() || how == Issued::Login || same_account {
            save_atomic(&self.dir, TOKEN_FILE, &bytes)?;
        }
        Ok(Saved { file: self.home_of(doc), superseded: false })
    }

    /// Stores what the Direct API said of `access_token` in every file
    /// that still holds that token (the account's, `token.json`). A file
    /// that holds another token by now is left alone: the verdict was
    /// about a token it no longer has. Returns how many files took it.
    pub fn record_verdict(
        &self,
        login: Option<&str>,
        access_token: &str,
        verdict: serde_json::Value,
    ) -> io::Result<usize> {
        let _lock = self.lock()?;
        let mut written = 0;
        let account =
            login.filter(|login| crate::config::valid_login(login)).map(|login| self.account_path(login));
        for path in account.into_iter().chain(std::iter::once(self.path())) {
            if let Ok(Some(mut current)) = load_file(&path) {
                if current.access_token == access_token {
                    current.direct = Some(verdict.clone());
                    let (dir, name) = split(&path);
                    save_atomic(dir, name, &current.to_bytes())?;
                    written += 1;
                }
            }
        }
        Ok(written)
    }

    /// Removes an account's file, and `token.json` when it holds that
    /// account. Returns which of the two were there.
    pub fn remove_account(&self, login: &str) -> io::Result<(bool, bool)> {
        let _lock = self.lock()?;
        let removed_account = remove_if_there(&self.account_path(login))?;
        let holds_it = matches!(self.load(), Ok(Some(doc)) if doc.login.as_deref() == Some(login));
        let removed_token_file = holds_it && remove_if_there(&self.path())?;
        if removed_account || removed_token_file {
            fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok((removed_account, removed_token_file))
    }

    /// Every stored account, sorted by login. A file that cannot be read
    /// or parsed is skipped and named in [`Accounts::skipped`], so one bad
    /// file spoils nothing else.
    pub fn accounts(&self) -> Result<Accounts, LoadError> {
        let dir = self.dir.join(ACCOUNTS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Accounts::default()),
            Err(err) => return Err(LoadError::Io(dir, err)),
        };
        let mut accounts = Accounts::default();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(login) = name.strip_suffix(".json") else { continue };
            if !crate::config::valid_login(login) {
                continue;
            }
            match load_file(&entry.path()) {
                Ok(Some(doc)) => accounts.found.push((login.to_owned(), doc)),
                Ok(None) => {}
                Err(err) => accounts.skipped.push(err),
            }
        }
        accounts.found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(accounts)
    }

    /// The stored accounts counted by what the Direct API last said of
    /// their tokens (`ok`, `error_58`, `unreachable`, `unchecked`).
    pub fn direct_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for (_, doc) in self.accounts().map(|accounts| accounts.found).unwrap_or_default() {
            let label = doc.direct_check().map_or_else(|| "unchecked".to_owned(), |check| check.label());
            *counts.entry(label).or_default() += 1;
        }
        counts
    }

    /// Puts the directory and `accounts/` (0700) and the token files
    /// (0600) back to private modes if someone loosened them, and removes
    /// temp files a crash left behind. Links are never followed. Returns
    /// what it fixed, for the log; never the contents.
    pub fn fix_modes(&self) -> io::Result<Vec<String>> {
        let mut fixed = Vec::new();
        if !self.dir.is_dir() {
            return Ok(fixed);
        }
        // The directory itself as configured (systemd's StateDirectory=
        // may be a link to /var/lib/private); nothing inside it is followed.
        fixed.extend(files::ensure_private_mode(&self.dir, 0o700, true)?);
        fixed.extend(fix_entries(&self.dir, |name| name == TOKEN_FILE)?);
        let accounts = self.dir.join(ACCOUNTS_DIR);
        fixed.extend(files::ensure_private_mode(&accounts, 0o700, false)?);
        fixed.extend(fix_entries(&accounts, |name| name.ends_with(".json"))?);
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

/// A file's directory and name, for [`save_atomic`].
fn split(path: &Path) -> (&Path, &str) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or(TOKEN_FILE);
    (dir, name)
}

/// Removes what interrupted writes left in `dir` and puts its token
/// files back to 0600 (links are left alone).
fn fix_entries(dir: &Path, is_token: impl Fn(&str) -> bool) -> io::Result<Vec<String>> {
    let mut fixed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(fixed),
        Err(err) => return Err(err),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if is_interrupted_write(&name) {
            fs::remove_file(&path)?;
            fixed.push(format!("removed {}, left by an interrupted write", path.display()));
        } else if is_token(&name) {
            fixed.extend(files::ensure_private_mode(&path, 0o600, false)?);
        }
    }
    Ok(fixed)
}

fn remove_if_there(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn doc(access: &str, login: Option<&str>, issued_us: u64) -> TokenDoc {
        TokenDoc {
            access_token: access.into(),
            refresh_token: Some(format!("r-{access}")),
            obtained_at: Some(issued_us / 1_000_000),
            obtained_at_us: Some(issued_us),
            login: login.map(str::to_owned),
            ..TokenDoc::default()
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_login_lands_in_both_files_with_private_modes() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().join("nested/tokens"));
        let saved = store.keep_issued(&doc("first", Some("alice"), 1_000), Issued::Login).unwrap();
        assert_eq!(saved, Saved { file: store.account_path("alice"), superseded: false });
        assert_eq!(store.load().unwrap().unwrap().access_token, "first");
        assert_eq!((mode(&store.path()), mode(store.dir())), (0o600, 0o700));
        assert_eq!(mode(&store.account_path("alice")), 0o600);
        let leftovers: Vec<_> = fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    #[test]
    fn the_newest_token_wins_whatever_the_order_of_saves() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().to_owned());
        store.keep_issued(&doc("new", Some("alice"), 2_000), Issued::Login).unwrap();
        let late = store.keep_issued(&doc("old", Some("alice"), 1_000), Issued::Login).unwrap();
        assert!(late.superseded);
        assert_eq!(load_file(&store.account_path("alice")).unwrap().unwrap().access_token, "new");
        assert_eq!(store.load().unwrap().unwrap().access_token, "new");
        // A refresh of another account leaves token.json to the last login.
        store.keep_issued(&doc("bob-1", Some("bob"), 3_000), Issued::Refresh).unwrap();
        assert_eq!(store.load().unwrap().unwrap().access_token, "new");
        store.keep_issued(&doc("alice-2", Some("alice"), 4_000), Issued::Refresh).unwrap();
        assert_eq!(store.load().unwrap().unwrap().access_token, "alice-2");
    }

    #[test]
    fn a_verdict_goes_only_where_its_token_still_is() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().to_owned());
        store.keep_issued(&doc("t1", Some("alice"), 1_000), Issued::Login).unwrap();
        store.keep_issued(&doc("t2", Some("alice"), 2_000), Issued::Login).unwrap();
        let verdict = serde_json::json!({"status": "ok", "checked_at": 1, "client_login": "alice"});
        assert_eq!(store.record_verdict(Some("alice"), "t1", verdict.clone()).unwrap(), 0);
        let account = load_file(&store.account_path("alice")).unwrap().unwrap();
        assert_eq!((account.access_token.as_str(), account.direct), ("t2", None));
        assert_eq!(store.record_verdict(Some("alice"), "t2", verdict).unwrap(), 2);
        assert!(store.load().unwrap().unwrap().direct_check().is_some());
    }

    #[test]
    fn one_bad_file_is_skipped_and_named() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().to_owned());
        store.keep_issued(&doc("a", Some("alice"), 1_000), Issued::Login).unwrap();
        fs::write(store.account_path("broken"), b"{\"access_").unwrap();
        let accounts = store.accounts().unwrap();
        assert_eq!(accounts.found.len(), 1);
        assert_eq!(accounts.skipped.len(), 1);
        assert!(accounts.skipped[0].to_string().contains("broken.json"));
        assert_eq!(store.direct_counts().values().sum::<u64>(), 1);
    }

    #[test]
    fn loosened_modes_and_stale_temp_files_are_fixed_and_links_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().join("tokens"));
        assert!(store.fix_modes().unwrap().is_empty(), "a missing directory needs no fixing");
        store.keep_issued(&doc("t", Some("alice"), 1_000), Issued::Login).unwrap();
        fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(store.account_path("alice"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(store.dir().join(".token.json.tmp.1.abc"), "partial").unwrap();
        fs::write(store.dir().join("accounts/.bob.json.tmp.1.x"), "partial").unwrap();
        // A link to a file outside: its target's mode is not ours to change.
        let outside = root.path().join("outside");
        fs::write(&outside, "x").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, store.dir().join("accounts/mallory.json")).unwrap();
        let fixed = store.fix_modes().unwrap();
        assert_eq!(fixed.len(), 5, "{fixed:?}");
        assert!(fixed.iter().all(|line| !line.contains("\"t\"")));
        assert_eq!((mode(store.dir()), mode(&store.path())), (0o700, 0o600));
        assert_eq!(mode(&store.account_path("alice")), 0o600);
        assert_eq!(mode(&outside), 0o644);
        assert!(!store.dir().join(".token.json.tmp.1.abc").exists());
        assert!(store.fix_modes().unwrap().is_empty());
    }

    #[test]
    fn removing_an_account_takes_token_json_only_when_it_is_that_account() {
        let root = tempfile::tempdir().unwrap();
        let store = TokenStore::new(root.path().to_owned());
        store.keep_issued(&doc("a", Some("alice"), 1_000), Issued::Login).unwrap();
        store.keep_issued(&doc("b", Some("bob"), 2_000), Issued::Login).unwrap();
        assert_eq!(store.remove_account("alice").unwrap(), (true, false));
        assert_eq!(store.remove_account("bob").unwrap(), (true, true));
        assert_eq!(store.remove_account("bob").unwrap(), (false, false));
    }

    #[test]
    fn first_saves_at_once_all_land() {
        for _ in 0..20 {
            let root = tempfile::tempdir().unwrap();
            let store = TokenStore::new(root.path().join("tokens"));
            let savers: Vec<_> = ["alice", "bob", "carol", "dave"]
                .into_iter()
                .enumerate()
                .map(|(at, login)| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        store.keep_issued(&doc(login, Some(login), 1_000 + at as u64), Issued::Login).unwrap()
                    })
                })
                .collect();
            for saver in savers {
                assert!(!saver.join().unwrap().superseded);
            }
            assert_eq!(store.accounts().unwrap().found.len(), 4);
        }
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
