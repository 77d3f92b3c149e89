//! The small text encodings the flow needs, in one place: base64 (the
//! `base64` crate: standard for PEM, URL-safe for PKCE, cookies and random
//! values), percent-encoding (the `percent-encoding` crate), and by hand
//! the strict `application/x-www-form-urlencoded` query and form parser and
//! the `Cookie` header lookup: the crates accept bad `%` escapes and
//! duplicate parameters, which these refuse instead of guessing.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What [`percent_encode`] leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Base64 with the standard alphabet and `=` padding (RFC 4648 §4), for PEM
/// and CSP hashes.
pub fn base64_standard(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Base64url without padding (RFC 4648 §5), as PKCE (RFC 7636 §4.2) wants.
pub fn base64_url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; `None` on any other character or length.
pub fn decode_base64_url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Appends `bytes` as unpadded base64url to `out`.
pub fn base64_url_append(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + base64_len(bytes.len(), false), 0);
    URL_SAFE_NO_PAD.encode_slice(bytes, &mut out[start..]).expect("sized by base64_len");
}

/// The length of `n` bytes in base64, with or without `=` padding.
pub const fn base64_len(n: usize, pad: bool) -> usize {
    match base64::encoded_len(n, pad) {
        Some(len) => len,
        None => panic!("base64 length overflows usize"),
    }
}

/// 32 bytes as unpadded base64url: 43 characters held in place, so the
/// state and the PKCE pair of a redirect cost no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UrlSafe32([u8; UrlSafe32::LEN]);

impl UrlSafe32 {
    /// Its length in characters: 43.
    pub const LEN: usize = base64_len(32, false);

    /// The encoding of `bytes`.
    pub fn encode(bytes: &[u8; 32]) -> UrlSafe32 {
        let mut text = [0; UrlSafe32::LEN];
        URL_SAFE_NO_PAD.encode_slice(bytes, &mut text).expect("43 characters hold 32 bytes");
        UrlSafe32(text)
    }

    /// 32 fresh random bytes, encoded: 256 bits, unguessable.
    pub fn random() -> UrlSafe32 {
        let mut bytes = [0; 32];
        crate::util::secret::fill_random(&mut bytes);
        UrlSafe32::encode(&bytes)
    }

    /// The 43 characters, as bytes: what the redirect path uses, since
    /// each `as_str` checks them as UTF-8 once more.
    pub fn as_bytes(&self) -> &[u8; UrlSafe32::LEN] {
        &self.0
    }

    /// The 43 characters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("the alphabet is ASCII")
    }
}

/// `bytes` fresh random bytes from the operating system, as base64url: for temporary file
/// names and the demo's codes and tokens ([`UrlSafe32`] makes the states
/// and PKCE verifiers).
pub fn random_urlsafe(bytes: usize) -> String {
    // On the stack for every size we use; no allocation to zero and free.
    let mut small = [0u8; 64];
    let mut large = Vec::new();
    let random = match small.get_mut(..bytes) {
        Some(random) => random,
        None => {
            large.resize(bytes, 0);
            &mut large[..]
        }
    };
    crate::util::secret::fill_random(random);
    base64_url(random)
}

/// Why a query string, form body or cookie could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    BadPercent,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// The same parameter appears twice; which one is meant is ambiguous.
    Duplicate(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadPercent => f.write_str("invalid percent-encoding"),
            DecodeError::NotUtf8 => f.write_str("not valid UTF-8 after percent-decoding"),
            DecodeError::Duplicate(name) => write!(f, "parameter '{name}' is given more than once"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space
/// and `%XX` a byte; the result must be UTF-8.
pub fn percent_decode(input: &str) -> Result<String, DecodeError> {
    let bytes = input.as_bytes();
    if !bytes.iter().any(|b| *b == b'%' || *b == b'+') {
        return Ok(input.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(DecodeError::BadPercent),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, which is
/// safe both in a URL query and in a form body.
pub fn percent_encode(input: &str, out: &mut String) {
    out.extend(utf8_percent_encode(input, UNRESERVED));
}

/// Builds `k1=v1&k2=v2` with every key and value percent-encoded.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(key, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    }
    out
}

/// Parses a query string or form body into decoded pairs, in order. Empty
/// segments (`a=1&&b=2`) are skipped; a key without `=` has an empty value.
pub fn parse_pairs(input: &str) -> Result<Vec<(String, String)>, DecodeError> {
    input
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

/// Picks the named parameters out of `input`, refusing duplicates of any of
/// them. Other parameters are ignored (providers add their own).
pub fn pick_params<const N: usize>(
    input: &str,
    names: [&str; N],
) -> Result<[Option<String>; N], DecodeError> {
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    for (key, value) in parse_pairs(input)? {
        if let Some(i) = names.iter().position(|name| *name == key) {
            if found[i].is_some() {
                return Err(DecodeError::Duplicate(key));
            }
            found[i] = Some(value);
        }
    }
    Ok(found)
}

/// Every `name=value` cookie pair in the `Cookie` header values (RFC 6265
/// §5.4 syntax: `a=1; b=2`), in order. Values are never percent-decoded;
/// headers that are not UTF-8 are skipped.
pub fn cookie_pairs<'a>(
    headers: impl IntoIterator<Item = &'a [u8]>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    headers
        .into_iter()
        .filter_map(|header| std::str::from_utf8(header).ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(key, value)| (key, value.trim_matches('"')))
}

/// Finds cookie `name`; the first match's raw value.
pub fn find_cookie<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    cookie_pairs(headers).find(|(key, _)| *key == name).map(|(_, value)| value)
}

/// Text from the network, made safe to print on a terminal or in a log
/// line: control characters (an escape sequence could rewrite the screen,
/// a newline forge a log line) and the bidirectional overrides that
/// reorder what is shown are dropped; at most `max_chars` are kept.
pub fn printable(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .take(max_chars)
        .collect()
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")];
        for (input, expected) in cases {
            assert_eq!(base64_standard(input.as_bytes()), expected);
        }
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn pkce_example_from_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        assert_eq!(base64_url(digest.as_ref()), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn fixed_size_and_appended_base64url_match_the_plain_encoding() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 41 + 7) as u8);
        assert_eq!(UrlSafe32::encode(&bytes).as_str(), base64_url(&bytes));
        for len in 0..8 {
            let mut out = b"head:".to_vec();
            base64_url_append(&bytes[..len], &mut out);
            assert_eq!(out, format!("head:{}", base64_url(&bytes[..len])).into_bytes());
        }
        let values: std::collections::HashSet<String> =
            (0..300).map(|_| UrlSafe32::random().as_str().to_owned()).collect();
        assert_eq!(values.len(), 300);
    }

    #[test]
    fn random_values_are_fresh_across_stretches() {
        let values: std::collections::HashSet<String> = (0..300).map(|_| random_urlsafe(32)).collect();
        assert_eq!(values.len(), 300, "300 x 32 bytes span more than one 4 KiB stretch");
        assert!(values.iter().all(|v| v.len() == 43));
    }

    #[test]
    fn percent_decoding_handles_plus_and_escapes() {
        assert_eq!(percent_decode("a+b%20c%2Fd").unwrap(), "a b c/d");
        assert_eq!(percent_decode("%D0%BF").unwrap(), "п");
    }

    #[test]
    fn bad_percent_escapes_are_refused() {
        for bad in ["%", "%4", "%zz", "abc%g1"] {
            assert_eq!(percent_decode(bad), Err(DecodeError::BadPercent), "{bad}");
        }
    }

    #[test]
    fn non_utf8_is_refused() {
        assert_eq!(percent_decode("%ff%fe"), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn form_round_trips() {
        let pairs = [("code", "a b&c=d"), ("state", "ü/+%"), ("empty", "")];
        let encoded = form_encode(&pairs);
        let decoded = parse_pairs(&encoded).unwrap();
        let expected: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn duplicates_of_picked_names_are_refused() {
        assert_eq!(
            pick_params("code=1&code=2", ["code", "state"]),
            Err(DecodeError::Duplicate("code".into()))
        );
        let [code, state] = pick_params("x=1&x=2&code=c", ["code", "state"]).unwrap();
        assert_eq!((code.as_deref(), state), (Some("c"), None));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let headers: [&[u8]; 2] = [b"a=1; __Host-x=abc", b"b=2"];
        assert_eq!(find_cookie(headers, "__Host-x"), Some("abc"));
        assert_eq!(find_cookie(headers, "x"), None);
        assert_eq!(find_cookie(headers, "b"), Some("2"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn percent_decode_never_panics(input in ".*") {
                let _ = percent_decode(&input);
            }

            #[test]
            fn query_parsing_never_panics(input in "[a-z=&%+0-9A-F\\x00-\\x7f]{0,64}") {
                let _ = parse_pairs(&input);
                let _ = pick_params(&input, ["code", "state", "error"]);
            }

            #[test]
            fn cookie_lookup_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..256), name in "[!-~]{0,24}") {
                let _ = find_cookie([raw.as_slice()], &name);
            }

            #[test]
            fn a_set_cookie_value_is_found_again(name in "[A-Za-z_-]{1,24}", value in "[A-Za-z0-9_-]{0,64}", other in "[a-z]{1,8}") {
                let header = format!("{other}=x; {name}={value}; z=1");
                let found = find_cookie([header.as_bytes()], &name);
                if name == other || name == "z" {
                    prop_assert!(found.is_some());
                } else {
                    prop_assert_eq!(found, Some(value.as_str()));
                }
            }

            #[test]
            fn forms_round_trip(pairs in proptest::collection::vec(("\\PC*", "\\PC*"), 0..8)) {
                let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(parse_pairs(&form_encode(&borrowed)).unwrap(), pairs);
            }

            #[test]
            fn picked_params_match_the_parsed_pairs(code in "\\PC*", state in "\\PC*") {
                let query = form_encode(&[("state", &state), ("x", "1"), ("code", &code)]);
                let [c, s] = pick_params(&query, ["code", "state"]).unwrap();
                prop_assert_eq!(c, Some(code));
                prop_assert_eq!(s, Some(state));
            }

            /// What the wrappers promise their callers, whatever engine is
            /// behind them: base64url round-trips, stays in the URL-safe
            /// alphabet without padding (cookies, states, PKCE), and is as
            /// long as `base64_len` says; the standard form is padded.
            #[test]
            fn base64_wrappers_keep_their_promises(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let url = base64_url(&bytes);
                prop_assert!(url.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{}", url);
                prop_assert_eq!(url.len(), base64_len(bytes.len(), false));
                prop_assert_eq!(decode_base64_url(&url), Some(bytes.clone()));
                let mut appended = b"x".to_vec();
                base64_url_append(&bytes, &mut appended);
                prop_assert_eq!(&appended[1..], url.as_bytes());
                let standard = base64_standard(&bytes);
                prop_assert_eq!(standard.len(), base64_len(bytes.len(), true));
                prop_assert_eq!(standard.len() % 4, 0);
            }
        }
    }
}
