//! A small HTTPS client for tests: hyper over rustls trusting only the test
//! CA, one cookie jar, HTTP/1.1 or HTTP/2.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub version: hyper::Version,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    pub fn location(&self) -> &str {
        self.header("location").expect("a Location header")
    }
}

pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    /// The cookie jar: (name, value) as the server set them, sent back on
    /// every request; a `Max-Age=0` removes one.
    pub cookies: Vec<(String, String)>,
    /// The loopback address connections come from (127.0.0.2, say): a
    /// second client address on one machine. `None`: the kernel's choice.
    pub source: Option<std::net::IpAddr>,
}

pub fn client_config(
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr`, verifying the server as `name`.
pub async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(config).connect(ServerName::try_from(name.to_owned()).unwrap(), tcp).await.unwrap()
}

impl Client {
    pub fn new(ca: &CertificateDer<'static>) -> Client {
        Client::with_config(client_config(ca, &[b"http/1.1"], rustls::DEFAULT_VERSIONS))
    }

    pub fn with_config(tls: Arc<rustls::ClientConfig>) -> Client {
        Client { tls, cookies: Vec::new(), source: None }
    }

    pub async fn get(&mut self, addr: SocketAddr, target: &str) -> Reply {
        self.send(addr, Method::GET, target, "").await
    }

    /// GET an absolute `https://localhost:PORT/...` URL.
    pub async fn get_url(&mut self, url: &str) -> Reply {
        let rest = url.strip_prefix("https://").expect("an https URL");
        let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let port: u16 = authority.rsplit_once(':').unwrap().1.parse().unwrap();
        self.get(SocketAddr::from(([127, 0, 0, 1], port)), target).await
    }

    pub async fn send(
        &mut self,
        addr: SocketAddr,
        method: Method,
        target: &str,
        body: &'static str,
    ) -> Reply {
        self.send_with(addr, method, target, &[], body.to_owned()).await
    }

    /// POSTs `body` as a form, with extra headers.
    pub async fn post_form(
        &mut self,
        addr: SocketAddr,
        target: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Reply {
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.send_with(addr, Method::POST, target, &all, body).await
    }

    /// Sends one request with extra headers and a body, on a new connection.
    pub async fn send_with(
        &mut self,
        addr: SocketAddr,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Reply {
        let tls = match self.source {
            None => tls_connect(addr, "localhost", self.tls.clone()).await,
            Some(source) => {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
                let tcp = socket.connect(addr).await.unwrap();
                let name = ServerName::try_from("localhost".to_owned()).unwrap();
                TlsConnector::from(self.tls.clone()).connect(name, tcp).await.unwrap()
            }
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let mut request = Request::builder().method(method).uri(target);
        if h2 {
            request = request.uri(format!("https://localhost:{}{target}", addr.port()));
        } else {
            request = request.header("host", format!("localhost:{}", addr.port()));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !self.cookies.is_empty() {
            let header: Vec<String> =
                self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
            request = request.header("cookie", header.join("; "));
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let response = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        };
        let status = response.status().as_u16();
        let version = response.version();
        let headers = response.headers().clone();
        for set in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !set.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned(), version }
    }
}

/// One plain-HTTP/1.1 request (the redirect and metrics listeners).
pub async fn plain(addr: SocketAddr, method: Method, target: &str) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri(target)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (status, version, headers) =
        (response.status().as_u16(), response.version(), response.headers().clone());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned(), version }
}
