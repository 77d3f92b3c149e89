//! Where we connect: an `https://` [`Endpoint`] parsed once (host, port,
//! path, the name to verify), and the host part of a `Host` header.

use std::fmt;

use rustls_pki_types::ServerName;

/// An `https://` endpoint, parsed once: where to connect, what to verify and
/// what to put in the request line and `Host`.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Endpoint {
    /// Parses an absolute `https://` URL without query or fragment.
    pub fn parse(url: &str) -> Result<Endpoint, &'static str> {
        let uri: hyper::Uri = url.parse().map_err(|_| "is not a valid URL")?;
        if uri.scheme_str() != Some("https") {
            return Err("is not an https:// URL");
        }
        let authority = uri.authority().ok_or("has no host")?;
        if authority.as_str().contains('@') {
            return Err("must not contain user information");
        }
        if uri.query().is_some() || url.contains('#') {
            return Err("must not have a query or fragment");
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        ServerName::try_from(host.clone()).map_err(|_| "has an invalid host name")?;
        Ok(Endpoint {
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_owned(),
            path: uri.path().to_owned(),
            host,
        })
    }

    /// `host[:port]` as it appears in the URL, for the `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path, for the request line.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The endpoint `name` under this one (whose path ends in `/`).
    pub fn join(&self, name: &str) -> Endpoint {
        let mut path = self.path.clone();
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(name);
        Endpoint { path, ..self.clone() }
    }

    /// The host to connect to (an IP literal without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint `name` beside this one: the same directory, another
    /// last segment (`…/token` → `…/revoke_token`).
    pub fn sibling(&self, name: &str) -> Endpoint {
        let directory = self.path.rfind('/').map_or("/", |slash| &self.path[..=slash]);
        Endpoint { path: format!("{directory}{name}"), ..self.clone() }
    }

    /// The name the server's certificate must carry.
    pub fn server_name(&self) -> ServerName<'static> {
        ServerName::try_from(self.host.clone()).expect("checked in Endpoint::parse")
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}{}", self.authority, self.path)
    }
}

/// `example.com:80` → `example.com`, `[::1]:80` → `[::1]`; refuses anything
/// that is not a plausible host name or IP literal.
pub fn host_without_port(host: &str) -> Option<&str> {
    let host = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'));
    plausible.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::parse("https://oauth.yandex.ru/token").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority(), e.path()),
            ("oauth.yandex.ru", 443, "oauth.yandex.ru", "/token")
        );
        let e = Endpoint::parse("https://[::1]:8443/demo/token").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.authority()), ("::1", 8443, "[::1]:8443"));
        assert!(Endpoint::parse("http://oauth.yandex.ru/token").is_err());
        assert!(Endpoint::parse("https://u:p@oauth.yandex.ru/token").is_err());
        assert!(Endpoint::parse("https://oauth.yandex.ru/token?x=1").is_err());
        assert!(Endpoint::parse("nonsense").is_err());
    }

    #[test]
    fn hosts_lose_their_port_and_junk_is_refused() {
        assert_eq!(host_without_port("example.com:80"), Some("example.com"));
        assert_eq!(host_without_port("example.com"), Some("example.com"));
        assert_eq!(host_without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_without_port("evil.com/path"), None);
        assert_eq!(host_without_port(""), None);
        assert_eq!(host_without_port("a b"), None);
    }
}
