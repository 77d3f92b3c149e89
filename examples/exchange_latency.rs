//! What the token exchange adds to the token endpoint's own latency, for
//! `bench/README.md`: a local endpoint that answers at once, then
//! (a) the same POST over one kept-alive connection (the endpoint's own
//! latency plus loopback), and (b) `OAuthClient::exchange_code`, which opens
//! a fresh TCP + TLS connection each time, as the server does.
//!
//!   cargo run --release --example exchange_latency [ROUNDS=2000]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use yandex_token::oauth::OAuthClient;
use yandex_token::tls::https::ClientLimits;
use yandex_token::util::endpoint::Endpoint;
use yandex_token::util::secret::Secret;

const ANSWER: &str =
    r#"{"token_type":"bearer","access_token":"y0_bench","expires_in":31536000,"refresh_token":"1:r"}"#;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(2000, |n| n.parse().expect("a number"));
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let pair = yandex_token::tls::certified_key(vec![cert.clone()], key).unwrap();
    let resolver = Arc::new(yandex_token::tls::CertResolver::new(pair, None));
    let mut server = (*yandex_token::tls::server_config(resolver).unwrap()).clone();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).ok();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        ANSWER.as_bytes(),
                    ))))
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await
                    .ok();
            });
        }
    });

    let client_tls = yandex_token::tls::client_config(false, None, std::slice::from_ref(&cert)).unwrap();
    let url = format!("https://localhost:{port}/");
    let client = OAuthClient::new(
        "bench".into(),
        Secret::new(Arc::from("secret")),
        &url,
        Endpoint::parse(&format!("{url}token")).unwrap(),
        None,
        yandex_token::tls::ClientTls::ready(client_tls.clone()),
        ClientLimits {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            max_body: 65536,
        },
    );

    // (a) One kept-alive connection: the endpoint's own latency.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).ok();
    let tls = tokio_rustls::TlsConnector::from(client_tls)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(connection);
    let mut kept = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let request = hyper::Request::post("/token")
            .header("host", format!("localhost:{port}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(b"grant_type=authorization_code&code=c")))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        response.into_body().collect().await.unwrap();
        kept.push(started.elapsed());
    }

    // (b) The real exchange, a fresh connection each time.
    let code = Secret::new("code".to_owned());
    let verifier = Secret::new("verifier".to_owned());
    let mut exchange = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        client.exchange_code(&code, &verifier).await.unwrap();
        exchange.push(started.elapsed());
    }
    kept.sort();
    exchange.sort();
    println!("rounds: {rounds}");
    println!(
        "endpoint over a kept-alive connection: p50 {:.3} ms, p90 {:.3} ms",
        percentile(&kept, 0.5),
        percentile(&kept, 0.9)
    );
    println!(
        "exchange_code (new TCP + TLS 1.3 each): p50 {:.3} ms, p90 {:.3} ms",
        percentile(&exchange, 0.5),
        percentile(&exchange, 0.9)
    );
    println!("added by the exchange at p50: {:.3} ms", percentile(&exchange, 0.5) - percentile(&kept, 0.5));
}
