//! Authorization flows in progress, kept in the browser rather than in the
//! server: starting a flow costs the server no memory, so a flood of
//! `GET /get_token` cannot push a real user's flow out.
//!
//! Each flow is one `__Host-` cookie, named after its state, whose value is
//! the PKCE verifier and an expiry sealed with AES-256-GCM, with the state
//! as associated data. The key is random and replaced every hour (the one
//! before stays for opening: a cookie lives 10 minutes), so however many
//! flows are started, the random 96-bit nonces under one key stay far
//! below their collision bound. Only this server can read
//! it, only for that state, only in the browser that started the flow
//! (the cookie is `HttpOnly`, `Secure`, `SameSite=Lax`), and only until it
//! expires. Single use is enforced here: a state whose cookie was opened is
//! remembered until it would have expired anyway. That memory grows only
//! with completed callbacks, each of which costs a token-endpoint call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, MAX_TAG_LEN, NONCE_LEN, Nonce, UnboundKey};

use crate::util::encoding::{UrlSafe32, base64_len, base64_url_append, decode_base64_url};
use crate::util::secret::Secret;

/// Every flow cookie's name starts with this.
pub const COOKIE_PREFIX: &str = "__Host-yt-flow-";

/// Why a callback's state was refused. The text goes to the browser.
pub type Refusal = &'static str;

/// The refusal of a state this browser already used: the caller may have
/// the first use's outcome to give instead.
pub const ALREADY_USED: Refusal = "this state was already used: start again at /get_token";

/// Bytes of SHA-256(state) in a cookie's name, and the name's length.
const NAME_HASH_LEN: usize = 12;
const NAME_LEN: usize = COOKIE_PREFIX.len() + base64_len(NAME_HASH_LEN, false);

/// What a cookie seals: its expiry and the PKCE verifier.
const MESSAGE_LEN: usize = 8 + UrlSafe32::LEN;
/// A sealed cookie's length: key id, nonce, expiry and verifier, tag.
const SEALED_LEN: usize = 1 + NONCE_LEN + MESSAGE_LEN + MAX_TAG_LEN;
/// How long one sealing key is used for new cookies.
const KEY_LIFETIME: Duration = Duration::from_secs(3600);

/// Single-use states remembered at most; the oldest are forgotten first.
/// An entry costs memory (a 16-byte key and its expiry, twice), not a call
/// to Yandex: minting states is free, and an entry is made by every
/// callback or refusal that passes the exchange limits (`http::exchanges`),
/// which bound how fast the set grows. Entries leave when their cookies
/// expire; past the cap an older one leaves early, and a replay of it
/// would reach the token endpoint, where Yandex refuses the spent code.
const USED_CAP: usize = 100_000;

#[derive(Default)]
struct Used {
    expiry: HashMap<[u8; 16], u64>,
    order: VecDeque<([u8; 16], u64)>,
}

/// The sealing keys: the current one and the one before it, each with its
/// id (the cookie's first byte).
struct Keys {
    current: (u8, LessSafeKey),
    previous: Option<(u8, LessSafeKey)>,
    made: Instant,
}

impl Keys {
    fn new() -> Keys {
        Keys { current: (0, random_key()), previous: None, made: Instant::now() }
    }

    /// Makes a new current key; the current one becomes the previous.
    fn rotate(&mut self) {
        let id = self.current.0.wrapping_add(1);
        self.previous = Some(std::mem::replace(&mut self.current, (id, random_key())));
        self.made = Instant::now();
    }

    fn by_id(&self, id: u8) -> Option<&LessSafeKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(key_id, _)| *key_id == id)
            .map(|(_, key)| key)
    }
}

fn random_key() -> LessSafeKey {
    let mut key = [0u8; 32];
    crate::util::secret::fill_random(&mut key);
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte key fits AES-256-GCM"))
}

/// Seals and opens flow cookies, and remembers used states.
pub struct PendingStates {
    keys: RwLock<Keys>,
    used: Mutex<Used>,
    ttl: Duration,
    per_browser: usize,
    /// What follows a flow cookie's value; the same for every flow.
    cookie_attributes: String,
}

impl std::fmt::Debug for PendingStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: only the count of used states is shown.
        f.debug_struct("PendingStates").field("used", &self.lock().order.len()).finish_non_exhaustive()
    }
}

/// What the callback found: the verifier, and the cookie that clears the flow.
#[derive(Debug)]
pub struct Taken {
    /// The PKCE verifier of the flow.
    pub verifier: Secret<String>,
    /// A `Set-Cookie` value that removes the flow's cookie.
    pub clear_cookie: String,
}

impl PendingStates {
    /// A store whose flows live `ttl`, at most `per_browser` per browser.
    pub fn new(ttl: Duration, per_browser: usize) -> PendingStates {
        PendingStates {
            keys: RwLock::new(Keys::new()),
            used: Mutex::new(Used::default()),
            ttl,
            per_browser: per_browser.max(1),
            cookie_attributes: attributes(ttl.as_secs()),
        }
    }

    /// The `Set-Cookie` values that start a flow for `state`: its sealed
    /// cookie, and removals of this browser's oldest flow cookies past the
    /// per-browser cap (usually none). `present` are the names of the flow
    /// cookies the request carried, oldest first (RFC 6265 §5.4 orders
    /// them so). The cookie is built on the stack and in one allocation of
    /// its exact size, which a header value then takes over as it is; it
    /// stays in bytes, like `state`, so nothing checks it as UTF-8.
    /// `random_nonce` is fresh random bytes from the OS, drawn by the
    /// caller together with the state's and the verifier's: one system call
    /// for all three.
    pub fn start(
        &self,
        state: &[u8],
        verifier: &Secret<UrlSafe32>,
        random_nonce: &[u8; NONCE_LEN],
        now: u64,
        present: &[&str],
    ) -> (Vec<u8>, Vec<String>) {
        let expires = now + self.ttl.as_secs();
        // key id | nonce | AES-256-GCM(expiry | verifier) | tag
        let mut sealed = [0u8; SEALED_LEN];
        let (id, rest) = sealed.split_at_mut(1);
        let (nonce, rest) = rest.split_at_mut(NONCE_LEN);
        nonce.copy_from_slice(random_nonce);
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("NONCE_LEN bytes");
        let (message, tag_space) = rest.split_at_mut(MESSAGE_LEN);
        message[..8].copy_from_slice(&expires.to_be_bytes());
        message[8..].copy_from_slice(verifier.expose().as_bytes());
        if self.read_keys().made.elapsed() >= KEY_LIFETIME {
            self.rotate_key();
        }
        let keys = self.read_keys();
        id[0] = keys.current.0;
        let tag = keys
            .current
            .1
            .seal_in_place_separate_tag(nonce, Aad::from(state), message)
            .expect("sealing a short message cannot fail");
        drop(keys);
        tag_space.copy_from_slice(tag.as_ref());
        let mut cookie =
            Vec::with_capacity(NAME_LEN + 1 + base64_len(SEALED_LEN, false) + self.cookie_attributes.len());
        push_cookie_name(state, &mut cookie);
        cookie.push(b'=');
        base64_url_append(&sealed, &mut cookie);
        cookie.extend_from_slice(self.cookie_attributes.as_bytes());
        let excess = (present.len() + 1).saturating_sub(self.per_browser);
        (cookie, present.iter().take(excess).map(|name| clear(name)).collect())
    }

    /// Opens the flow of `state` from the request's cookies (name, value)
    /// and marks the state used. Unknown, reused, expired, tampered and
    /// other browsers' states are refused.
    pub fn take<'a>(
        &self,
        state: &str,
        mut cookies: impl Iterator<Item = (&'a str, &'a str)>,
        now: u64,
    ) -> Result<Taken, Refusal> {
        let name = cookie_name(state);
        let value = cookies.find(|(n, _)| *n == name).map(|(_, v)| v).ok_or(
            "no flow for this state in this browser: start again at /get_token in the same browser, with cookies enabled",
        )?;
        let damaged = "the flow cookie is damaged: start again at /get_token";
        let mut sealed = decode_base64_url(value).ok_or(damaged)?;
        // Exactly one cookie's length before anything is split or opened.
        if sealed.len() != SEALED_LEN {
            return Err(damaged);
        }
        let (id, rest) = sealed.split_at_mut(1);
        let (nonce, ciphertext) = rest.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged)?;
        let keys = self.read_keys();
        let key = keys
            .by_id(id[0])
            .ok_or("the flow is too old for this server's keys: start again at /get_token")?;
        let opened = key.open_in_place(nonce, Aad::from(state.as_bytes()), ciphertext).map_err(
            |_| "the flow cookie does not belong to this state or to this server: start again at /get_token",
        )?;
        drop(keys);
        if opened.len() != MESSAGE_LEN {
            return Err(damaged);
        }
        let (expiry, verifier) = opened.split_at(8);
        let expires = u64::from_be_bytes(expiry.try_into().expect("8 bytes"));
        if now >= expires {
            return Err("the state has expired (flows last 10 minutes): start again at /get_token");
        }
        let verifier = String::from_utf8(verifier.to_vec()).map_err(|_| "the flow cookie is damaged")?;
        let mut used = self.lock();
        let key = used_key(state);
        // Forget states whose cookies have expired: they cannot be replayed.
        while used.order.front().is_some_and(|(_, at)| *at <= now) || used.order.len() > USED_CAP {
            let (old, at) = used.order.pop_front().expect("not empty");
            if used.expiry.get(&old) == Some(&at) {
                used.expiry.remove(&old);
            }
        }
        if used.expiry.insert(key, expires).is_some() {
            return Err(ALREADY_USED);
        }
        used.order.push_back((key, expires));
        Ok(Taken { verifier: Secret::new(verifier), clear_cookie: clear(&name) })
    }

    /// Replaces the sealing key now (it is also replaced every hour);
    /// cookies sealed under the key before still open.
    pub fn rotate_key(&self) {
        self.keys.write().unwrap_or_else(|poison| poison.into_inner()).rotate();
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|poison| poison.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The flow cookie's name for `state`: a hash, so the name does not give
/// the state away in logs of cookie names.
pub fn cookie_name(state: &str) -> String {
    let mut name = Vec::with_capacity(NAME_LEN);
    push_cookie_name(state.as_bytes(), &mut name);
    String::from_utf8(name).expect("the name is ASCII")
}

fn push_cookie_name(state: &[u8], out: &mut Vec<u8>) {
    let digest = ring::digest::digest(&ring::digest::SHA256, state);
    out.extend_from_slice(COOKIE_PREFIX.as_bytes());
    base64_url_append(&digest.as_ref()[..NAME_HASH_LEN], out);
}

fn used_key(state: &str) -> [u8; 16] {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("used:{state}").as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest.as_ref()[..16]);
    key
}

/// What follows a flow cookie's value, for a life of `max_age` seconds.
fn attributes(max_age: u64) -> String {
    format!("; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax")
}

/// The `Set-Cookie` value that removes the flow cookie of `state`.
pub fn clear_for_state(state: &str) -> String {
    clear(&cookie_name(state))
}

/// The `Set-Cookie` value that removes the flow cookie `name`.
fn clear(name: &str) -> String {
    format!("{name}={}", attributes(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::encoding::base64_url;

    const TTL: Duration = Duration::from_secs(600);
    const NOW: u64 = 1_800_000_000;

    fn store() -> PendingStates {
        PendingStates::new(TTL, 3)
    }

    /// The (name, value) of the flow cookie in a Set-Cookie value.
    fn pair(set_cookie: &[u8]) -> (String, String) {
        let (name, rest) = std::str::from_utf8(set_cookie).unwrap().split_once('=').unwrap();
        (name.to_owned(), rest.split(';').next().unwrap().to_owned())
    }

    /// Starts a flow with a fresh nonce, as `get_token` does.
    fn start(
        flows: &PendingStates,
        state: &[u8],
        verifier: &Secret<UrlSafe32>,
        now: u64,
        present: &[&str],
    ) -> (Vec<u8>, Vec<String>) {
        let mut nonce = [0u8; NONCE_LEN];
        crate::util::secret::fill_random(&mut nonce);
        flows.start(state, verifier, &nonce, now, present)
    }

    fn verifier() -> Secret<UrlSafe32> {
        Secret::new(UrlSafe32::random())
    }

    #[test]
    fn a_state_is_taken_once() {
        let flows = store();
        let v = verifier();
        let (name, value) = pair(&start(&flows, b"s1", &v, NOW, &[]).0);
        let taken = flows.take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW).unwrap();
        assert_eq!(taken.verifier.expose(), v.expose().as_str());
        assert!(taken.clear_cookie.contains("Max-Age=0"));
        assert!(flows.take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW).is_err());
    }

    #[test]
    fn a_cookie_opens_only_for_its_state_and_its_server() {
        let flows = store();
        let v = verifier();
        let (name, value) = pair(&start(&flows, b"s1", &v, NOW, &[]).0);
        // Another state, even given this cookie under that state's name.
        let other = cookie_name("s2");
        assert!(flows.take("s2", [(other.as_str(), value.as_str())].into_iter(), NOW).is_err());
        // Another server (another key).
        assert!(store().take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW).is_err());
        // No cookie at all: another browser.
        assert!(flows.take("s1", std::iter::empty(), NOW).is_err());
        // Tampered.
        let mut bytes = value.clone().into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(flows.take("s1", [(name.as_str(), tampered.as_str())].into_iter(), NOW).is_err());
        // The real one still works.
        assert!(flows.take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW).is_ok());
    }

    #[test]
    fn expired_states_are_refused() {
        let flows = store();
        let v = verifier();
        let (name, value) = pair(&start(&flows, b"s1", &v, NOW, &[]).0);
        let err = flows.take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW + 600).unwrap_err();
        assert!(err.contains("expired"), "{err}");
    }

    #[test]
    fn two_tabs_both_complete() {
        let flows = store();
        let (v1, v2) = (verifier(), verifier());
        let first = pair(&start(&flows, b"s1", &v1, NOW, &[]).0);
        let second = pair(&start(&flows, b"s2", &v2, NOW, &[&first.0]).0);
        let jar = [(first.0.as_str(), first.1.as_str()), (second.0.as_str(), second.1.as_str())];
        assert_eq!(flows.take("s2", jar.into_iter(), NOW).unwrap().verifier.expose(), v2.expose().as_str());
        assert_eq!(flows.take("s1", jar.into_iter(), NOW).unwrap().verifier.expose(), v1.expose().as_str());
    }

    #[test]
    fn the_per_browser_cap_clears_the_oldest_cookies() {
        let flows = store();
        let (cookie, clears) = start(&flows, b"s4", &verifier(), NOW, &["a", "b", "c"]);
        assert!(cookie.starts_with(cookie_name("s4").as_bytes()));
        assert_eq!(clears.len(), 1, "{clears:?}");
        assert!(clears[0].starts_with("a=;") && clears[0].contains("Max-Age=0"));
    }

    #[test]
    fn used_states_are_forgotten_once_expired() {
        let flows = store();
        let v = verifier();
        let (name, value) = pair(&start(&flows, b"s1", &v, NOW, &[]).0);
        flows.take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW).unwrap();
        let (name2, value2) = pair(&start(&flows, b"s2", &v, NOW + 700, &[]).0);
        flows.take("s2", [(name2.as_str(), value2.as_str())].into_iter(), NOW + 700).unwrap();
        assert_eq!(flows.lock().order.len(), 1);
    }

    #[test]
    fn a_flow_cookie_is_one_allocation_of_its_exact_size() {
        // So the header value takes the buffer over as it is (bytes only
        // copies into a shared buffer when capacity and length differ).
        let (cookie, clears) = start(&store(), b"s1", &verifier(), NOW, &[]);
        assert_eq!(cookie.len(), cookie.capacity());
        assert_eq!(clears.capacity(), 0);
        assert_eq!(cookie_name("s1").len(), NAME_LEN);
        assert!(cookie.ends_with(b"; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax"), "{cookie:?}");
    }

    #[test]
    fn cookies_open_across_one_key_rotation_and_not_two() {
        let flows = store();
        let (name, value) = pair(&start(&flows, b"s1", &verifier(), NOW, &[]).0);
        let (name2, value2) = pair(&start(&flows, b"s2", &verifier(), NOW, &[]).0);
        flows.rotate_key();
        assert!(flows.take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW).is_ok());
        // New cookies use the new key, and open too.
        let (name3, value3) = pair(&start(&flows, b"s3", &verifier(), NOW, &[]).0);
        let key_id = |value: &str| decode_base64_url(value).unwrap()[0];
        assert_ne!(key_id(&value3), key_id(&value), "another key id");
        assert!(flows.take("s3", [(name3.as_str(), value3.as_str())].into_iter(), NOW).is_ok());
        flows.rotate_key();
        let err = flows.take("s2", [(name2.as_str(), value2.as_str())].into_iter(), NOW).unwrap_err();
        assert!(err.contains("too old"), "{err}");
    }

    #[test]
    fn cookies_of_any_length_are_refused_without_a_panic() {
        let flows = store();
        let (name, value) = pair(&start(&flows, b"s1", &verifier(), NOW, &[]).0);
        let real = decode_base64_url(&value).unwrap();
        for len in 0..real.len() + 40 {
            let mut bytes = real.clone();
            bytes.resize(len, 7);
            if bytes == real {
                continue;
            }
            let forged = base64_url(&bytes);
            assert!(flows.take("s1", [(name.as_str(), forged.as_str())].into_iter(), NOW).is_err(), "{len}");
        }
        assert!(flows.take("s1", [(name.as_str(), value.as_str())].into_iter(), NOW).is_ok());
    }

    #[test]
    fn base64url_round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode_base64_url(&base64_url(&bytes)), Some(bytes));
        }
        assert_eq!(decode_base64_url("a+b/"), None);
    }
}
