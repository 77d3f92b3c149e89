//! [`Secret`]: a value that never shows itself in a `Debug` print, so a
//! client secret, a code, a state, a PKCE verifier or a token cannot leak
//! into a log line or a panic message by accident. Reading it takes an
//! explicit [`Secret::expose`]. Secret bytes come from [`fill_random`].

use std::fmt;

/// Fills `out` from the operating system's generator (getrandom(2), through
/// ring's `SystemRandom`): every state, PKCE verifier, cookie key and nonce.
/// Auditors expect the OS behind such secrets, not a generator of our own.
pub fn fill_random(out: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new().fill(out).expect("the operating system's random generator failed");
}

/// Holds a secret value; `Debug` prints `Secret(<redacted>)`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:#?}", Some(&secret)), "Some(\n    Secret(<redacted>),\n)");
        assert_eq!(secret.expose(), "hunter2");
    }
}
