//! Server-side TLS on rustls's unbuffered API. rustls's buffered connection
//! keeps a 4 KiB record buffer for the whole life of every connection; here
//! records are read into a buffer on the stack and decrypted from there, and
//! only a partial record or unsent bytes live on the heap, so a connection
//! waiting for its next request holds no buffer at all (issue 5: 10,000 idle
//! connections in under 64 MiB).

use std::future::poll_fn;
use std::io;
use std::mem::{self, MaybeUninit};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most plaintext one record carries (RFC 8446 §5.1).
const MAX_PLAINTEXT: usize = 16 * 1024;
/// A whole record on the wire: header, plaintext and the largest expansion
/// RFC 8446 §5.2 allows.
const MAX_RECORD: usize = 5 + MAX_PLAINTEXT + 256;
/// Received bytes held for rustls at most: its 64 KiB limit on a handshake
/// message joined from several records, plus the record being read.
const MAX_INCOMING: usize = 64 * 1024 + MAX_RECORD;
/// What a record adds to its plaintext: header, nonce, content type, tag.
const RECORD_OVERHEAD: usize = 64;

/// A TLS connection over `S` that owns its record buffers.
pub struct TlsStream<S> {
    io: S,
    conn: UnbufferedServerConnection,
    /// Received bytes rustls has not consumed: a partial record, or a
    /// handshake message arriving in pieces. Unallocated between records.
    incoming: Vec<u8>,
    /// Decrypted bytes the reader has not taken yet, from `plaintext_taken` on.
    plaintext: Vec<u8>,
    plaintext_taken: usize,
    /// Records not yet written to the socket, from `outgoing_sent` on.
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    /// The peer sent close_notify, or closed its end of the socket.
    read_closed: bool,
    /// The socket ended without the peer's close_notify (perhaps in the
    /// middle of a record): a truncation, reported as `UnexpectedEof`.
    truncated: bool,
    /// Our close_notify is queued.
    write_closed: bool,
    /// rustls reported an error: it must not be called again (it would
    /// report the same record again, and send a second alert).
    failed: bool,
}

/// The socket under the TLS, for a lingering close (`http::connections`).
impl<S: std::os::fd::AsFd> std::os::fd::AsFd for TlsStream<S> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// What to encrypt once rustls allows application data.
#[derive(Clone, Copy)]
enum Outbound<'a> {
    Data(&'a [u8]),
    CloseNotify,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    /// Runs the server side of a handshake over `io`, whose first record
    /// (the ClientHello, read ahead by the caller) is `first_record`. A
    /// failed handshake gets rustls's alert before the error returns.
    pub async fn accept(io: S, config: Arc<ServerConfig>, first_record: Vec<u8>) -> io::Result<TlsStream<S>> {
        let conn = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = TlsStream {
            io,
            conn,
            incoming: first_record,
            plaintext: Vec::new(),
            plaintext_taken: 0,
            outgoing: Vec::new(),
            outgoing_sent: 0,
            read_closed: false,
            truncated: false,
            write_closed: false,
            failed: false,
        };
        let mut outcome = stream.process_incoming(None, None).map(drop);
        if outcome.is_ok() {
            outcome = poll_fn(|cx| stream.poll_handshake(cx)).await;
        }
        match outcome {
            Ok(()) => Ok(stream),
            Err(err) => {
                // The alert rustls queued, if the peer still listens.
                poll_fn(|cx| stream.poll_send(cx)).await.ok();
                Err(err)
            }
        }
    }

    /// The protocol ALPN chose, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The transport underneath.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Whether bytes from the peer are already here, decrypted or not, so
    /// the socket will not signal them again.
    pub fn has_buffered_input(&self) -> bool {
        self.plaintext.len() > self.plaintext_taken || !self.incoming.is_empty()
    }

    /// Sends our flights and reads the peer's until the handshake is done.
    /// What TLS 1.3 owes after it, the session ticket, stays queued: it goes
    /// out with the first response, in the same segment and system call
    /// (or on `flush`).
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let done = !self.conn.is_handshaking();
            if done && self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                return Poll::Ready(Ok(()));
            }
            // TLS 1.2 ends with our Finished, which the peer waits for.
            ready!(self.poll_send(cx))?;
            if done {
                return Poll::Ready(Ok(()));
            }
            if self.read_closed {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            ready!(self.poll_receive(cx, None))?;
        }
    }

    /// Reads from the socket once and runs rustls over what came, handing
    /// decrypted bytes to `reader` (the rest waits in `plaintext`).
    fn poll_receive(
        &mut self,
        cx: &mut Context<'_>,
        reader: Option<&mut ReadBuf<'_>>,
    ) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(failed()));
        }
        let held = self.incoming.len();
        if held >= MAX_INCOMING {
            return Poll::Ready(Err(invalid_data("TLS message too large")));
        }
        // Read on the stack, so a connection waiting here holds nothing.
        let mut stack = [MaybeUninit::<u8>::uninit(); MAX_RECORD];
        let mut read = ReadBuf::uninit(&mut stack[..MAX_RECORD.min(MAX_INCOMING - held)]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        if read.filled().is_empty() {
            // The socket's end without close_notify first (RFC 8446 §6.1):
            // what came may be cut short, as tokio-rustls reports too.
            self.truncated = !self.read_closed;
            self.read_closed = true;
            return Poll::Ready(Ok(()));
        }
        let queued = self.outgoing.len();
        let established = !self.conn.is_handshaking();
        let outcome = if held == 0 {
            // The usual case: whole records arrive, are decrypted where they
            // were read, and nothing is kept.
            let input = read.filled_mut();
            self.process(input, reader, None).map(|(consumed, _)| {
                if consumed < input.len() {
                    self.incoming = input[consumed..].to_vec();
                }
            })
        } else {
            // The rest of a record (or handshake message) begun earlier.
            self.incoming.extend_from_slice(read.filled());
            self.process_incoming(reader, None).map(drop)
        };
        // (Not the session ticket that ends the handshake: it waits for the
        // first response.)
        if outcome.is_err() || (established && self.outgoing.len() > queued) {
            // What rustls produced while reading (an alert, a key update
            // reply) goes out now, as far as the socket takes it; the rest
            // with the next write or flush.
            let _ = self.poll_send(cx);
        }
        Poll::Ready(outcome)
    }

    /// Runs rustls over `incoming` and keeps what it did not consume.
    fn process_incoming(
        &mut self,
        reader: Option<&mut ReadBuf<'_>>,
        send: Option<Outbound<'_>>,
    ) -> io::Result<bool> {
        let mut input = mem::take(&mut self.incoming);
        let outcome = self.process(&mut input, reader, send);
        let consumed = outcome.as_ref().map_or(0, |(consumed, _)| *consumed);
        // Only consumed bytes are moved out, never the partial record
        // again: a record arriving a byte at a time costs linear work, not
        // quadratic. Nothing at all is held between records.
        if consumed == input.len() {
            input = Vec::new();
        } else if consumed > 0 {
            input.drain(..consumed);
        }
        self.incoming = input;
        outcome.map(|(_, sent)| sent)
    }

    /// Runs rustls over `input` until it needs more bytes: decrypted data
    /// goes to `reader` (or waits in `plaintext`), handshake messages and
    /// alerts are queued in `outgoing`, and `send`, if any, is encrypted
    /// there once rustls allows it. Returns the bytes of `input` consumed
    /// and whether `send` was encrypted.
    fn process(
        &mut self,
        input: &mut [u8],
        mut reader: Option<&mut ReadBuf<'_>>,
        send: Option<Outbound<'_>>,
    ) -> io::Result<(usize, bool)> {
        if self.failed {
            return Err(failed());
        }
        let mut consumed = 0;
        loop {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut input[consumed..]);
            match state {
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(record) = traffic.next_record() {
                        let payload = record.map_err(invalid_data)?.payload;
                        let given = match reader.as_deref_mut() {
                            Some(buf) if self.plaintext.is_empty() => {
                                let n = payload.len().min(buf.remaining());
                                buf.put_slice(&payload[..n]);
                                n
                            }
                            _ => 0,
                        };
                        self.plaintext.extend_from_slice(&payload[given..]);
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    // Sized exactly: a session ticket may wait here for the
                    // first request.
                    append(&mut self.outgoing, 0, |out| data.encode(out))?;
                }
                // Queued in `outgoing`, which goes out in order before
                // anything written later.
                Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
                Ok(ConnectionState::PeerClosed) => self.read_closed = true,
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let sent = match send {
                        Some(Outbound::Data(data)) => {
                            append(&mut self.outgoing, data.len() + RECORD_OVERHEAD, |out| {
                                traffic.encrypt(data, out)
                            })?;
                            true
                        }
                        Some(Outbound::CloseNotify) => {
                            append(&mut self.outgoing, RECORD_OVERHEAD, |out| {
                                traffic.queue_close_notify(out)
                            })?;
                            true
                        }
                        None => false,
                    };
                    return Ok((consumed + discard, sent));
                }
                Ok(ConnectionState::Closed) => {
                    self.read_closed = true;
                    return Ok((consumed + discard, false));
                }
                Ok(ConnectionState::BlockedHandshake) => return Ok((consumed + discard, false)),
                Ok(_) => {
                    // Early data is never enabled; nothing else is defined.
                    return Err(invalid_data("unexpected TLS state"));
                }
                Err(err) => {
                    consumed += discard;
                    self.failed = true;
                    self.queue_alert(&mut input[consumed..]);
                    return Err(invalid_data(err));
                }
            }
            consumed += discard;
        }
    }

    /// After an error rustls has an alert for the peer: queue it. One call
    /// only: with no alert queued, rustls would process the bad input again.
    fn queue_alert(&mut self, input: &mut [u8]) {
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(input);
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = state {
            append(&mut self.outgoing, 0, |out| data.encode(out)).ok();
        }
    }

    /// Encrypts `send` into `outgoing`: rustls may first want to read what
    /// is buffered or queue a message of its own.
    fn encrypt(&mut self, send: Outbound<'_>) -> io::Result<()> {
        if self.conn.is_handshaking() {
            return Err(io::Error::other("TLS handshake not complete"));
        }
        if self.process_incoming(None, Some(send))? { Ok(()) } else { Err(io::ErrorKind::BrokenPipe.into()) }
    }

    /// Writes `outgoing` to the socket; frees it once all of it is sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing_sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.outgoing_sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing_sent += n;
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.outgoing_sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Moves buffered plaintext into `buf`; false if there was none.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let waiting = &self.plaintext[self.plaintext_taken..];
        if waiting.is_empty() {
            return false;
        }
        let n = waiting.len().min(buf.remaining());
        buf.put_slice(&waiting[..n]);
        self.plaintext_taken += n;
        if self.plaintext_taken == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.plaintext_taken = 0;
        }
        true
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // The session ticket queued at the handshake's end waits for the
        // first write or flush: one segment instead of two.
        let this = self.get_mut();
        loop {
            if this.take_plaintext(buf) {
                return Poll::Ready(Ok(()));
            }
            if this.truncated {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection without close_notify",
                )));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            ready!(this.poll_receive(cx, Some(buf)))?;
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Bounded: at most a record's worth waits unsent. Below that, what
        // is queued (the session ticket after the handshake) goes out with
        // this write, in one system call.
        if this.outgoing.len() - this.outgoing_sent >= MAX_RECORD {
            ready!(this.poll_send(cx))?;
        }
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let data = &data[..data.len().min(MAX_PLAINTEXT)];
        this.encrypt(Outbound::Data(data))?;
        // Accepted: what the socket does not take now goes out on the next
        // write or flush.
        if let Poll::Ready(Err(err)) = this.poll_send(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            if !this.conn.is_handshaking() {
                // A peer that already closed gets no close_notify; fine.
                this.encrypt(Outbound::CloseNotify).ok();
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// rustls's two "buffer too small" errors, seen alike.
trait NeedsRoom: std::fmt::Display {
    fn required_size(&self) -> Option<usize>;
}

impl NeedsRoom for EncodeError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncodeError::InsufficientSize(err) => Some(err.required_size),
            EncodeError::AlreadyEncoded => None,
        }
    }
}

impl NeedsRoom for EncryptError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncryptError::InsufficientSize(err) => Some(err.required_size),
            EncryptError::EncryptExhausted => None,
        }
    }
}

/// Appends what `write` puts into a buffer, growing `out` by `guess` bytes
/// first, or by what rustls says it needs.
fn append<E: NeedsRoom>(
    out: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> io::Result<()> {
    let start = out.len();
    let mut room = guess;
    loop {
        out.resize(start + room, 0);
        let written = write(&mut out[start..]);
        match written {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(err) => {
                out.truncate(start);
                match err.required_size() {
                    Some(needed) if needed > room => room = needed,
                    _ => return Err(io::Error::other(err.to_string())),
                }
            }
        }
    }
}

fn failed() -> io::Error {
    invalid_data("the TLS connection failed earlier")
}

fn invalid_data(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream as ClientStream;

    use super::*;
    use crate::tls::opening::{Opening, read_opening};
    use crate::tls::{self, CertResolver};

    /// A server configuration for `localhost` and a client that trusts it,
    /// limited to `versions`.
    fn configs(versions: &[&'static rustls::SupportedProtocolVersion]) -> (Arc<ServerConfig>, TlsConnector) {
        let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = CertificateDer::from(issued.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()));
        let certified = tls::certified_key(vec![cert.clone()], key).unwrap();
        let server = tls::server_config(Arc::new(CertResolver::new(certified, None))).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server, TlsConnector::from(Arc::new(client)))
    }

    /// The server's end of an in-memory pipe, reading at most `max` bytes
    /// at a time.
    struct Trickle {
        io: DuplexStream,
        max: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let mut chunk = vec![0; self.max.min(buf.remaining())];
            let mut limited = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut limited))?;
            buf.put_slice(limited.filled());
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, data)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// A handshake over an in-memory pipe whose server end reads `max`
    /// bytes at a time.
    async fn connect(
        max: usize,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (TlsStream<Trickle>, ClientStream<DuplexStream>) {
        let (server_config, connector) = configs(versions);
        let (client_io, server_io) = duplex(256 * 1024);
        let server = tokio::spawn(async move {
            let mut server_io = Trickle { io: server_io, max };
            let Opening::Tls(first) = read_opening(&mut server_io).await else { panic!("no ClientHello") };
            TlsStream::accept(server_io, server_config, first).await
        });
        let name = ServerName::try_from("localhost").unwrap();
        let client = connector.connect(name, client_io).await.unwrap();
        (server.await.unwrap().unwrap(), client)
    }

    fn holds_no_buffers(stream: &TlsStream<Trickle>) -> bool {
        stream.incoming.capacity() == 0 && stream.plaintext.capacity() == 0 && stream.outgoing.capacity() == 0
    }

    async fn exchange(server: &mut TlsStream<Trickle>, client: &mut ClientStream<DuplexStream>, size: usize) {
        let request: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let response: Vec<u8> = request.iter().rev().copied().collect();
        let sent = request.clone();
        let client_side = async {
            client.write_all(&sent).await.unwrap();
            client.flush().await.unwrap();
            let mut got = vec![0; size];
            client.read_exact(&mut got).await.unwrap();
            got
        };
        let server_side = async {
            let mut got = vec![0; size];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(&response).await.unwrap();
            server.flush().await.unwrap();
            got
        };
        let (client_got, server_got) = tokio::join!(client_side, server_side);
        assert!(server_got == request, "the server read what the client sent");
        assert!(client_got == response, "the client read what the server sent");
    }

    #[tokio::test]
    async fn requests_and_responses_cross_and_nothing_is_held_between_them() {
        let (mut server, mut client) = connect(64 * 1024, &[&rustls::version::TLS13]).await;
        assert_eq!(server.alpn_protocol(), None);
        assert!(!server.outgoing.is_empty(), "the session ticket waits for the first response");
        server.flush().await.unwrap();
        assert!(holds_no_buffers(&server), "after the handshake and a flush");
        for size in [1, 300, 16 * 1024, 100 * 1024] {
            exchange(&mut server, &mut client, size).await;
            assert!(holds_no_buffers(&server), "after {size} bytes each way");
        }
    }

    #[tokio::test]
    async fn records_that_arrive_a_byte_at_a_time_are_joined() {
        let (mut server, mut client) = connect(1, &[&rustls::version::TLS13]).await;
        exchange(&mut server, &mut client, 5000).await;
        assert!(holds_no_buffers(&server));
    }

    #[tokio::test]
    async fn a_partial_record_is_held_in_exactly_its_bytes() {
        let (mut server, mut client) = connect(64 * 1024, &[&rustls::version::TLS13]).await;
        exchange(&mut server, &mut client, 10).await;
        // A record header announcing 256 bytes, and 3 of them.
        client.get_mut().0.write_all(&[0x17, 0x03, 0x03, 0x01, 0x00, 1, 2, 3]).await.unwrap();
        let mut buf = [0u8; 64];
        let mut read = ReadBuf::new(&mut buf);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // The pipe already holds the bytes: one poll takes them, then waits.
        assert!(Pin::new(&mut server).poll_read(&mut cx, &mut read).is_pending());
        assert_eq!(server.incoming.len(), 8);
        assert_eq!(server.incoming.capacity(), 8, "no read buffer is kept while waiting");
    }

    #[tokio::test]
    async fn tls12_works_too() {
        let (mut server, mut client) = connect(7, &[&rustls::version::TLS12]).await;
        exchange(&mut server, &mut client, 20_000).await;
        assert!(holds_no_buffers(&server));
    }

    #[tokio::test]
    async fn a_key_update_from_the_client_is_answered() {
        let (mut server, mut client) = connect(64 * 1024, &[&rustls::version::TLS13]).await;
        exchange(&mut server, &mut client, 100).await;
        client.get_mut().1.refresh_traffic_keys().unwrap();
        for _ in 0..3 {
            exchange(&mut server, &mut client, 1000).await;
        }
    }

    #[tokio::test]
    async fn close_notify_both_ways_ends_cleanly() {
        let (mut server, mut client) = connect(64 * 1024, &[&rustls::version::TLS13]).await;
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        let mut all = Vec::new();
        client.read_to_end(&mut all).await.expect("a close_notify, not a truncation");
        assert_eq!(all, b"bye");
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(server.write_all(b"more").await.is_err(), "no writes after close_notify");
    }

    #[tokio::test]
    async fn a_close_without_close_notify_is_a_truncation() {
        let (mut server, mut client) = connect(64 * 1024, &[&rustls::version::TLS13]).await;
        exchange(&mut server, &mut client, 10).await;
        // The TCP end, with no close_notify before it.
        client.get_mut().0.shutdown().await.unwrap();
        let err = server.read(&mut [0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    #[tokio::test]
    async fn a_close_in_the_middle_of_a_record_is_a_truncation() {
        let (mut server, mut client) = connect(64 * 1024, &[&rustls::version::TLS13]).await;
        exchange(&mut server, &mut client, 10).await;
        let raw = client.get_mut().0;
        raw.write_all(&[0x17, 0x03, 0x03, 0x01, 0x00, 1, 2, 3]).await.unwrap();
        raw.shutdown().await.unwrap();
        let err = server.read(&mut [0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    #[tokio::test]
    async fn garbage_after_the_handshake_is_an_error_and_the_peer_gets_an_alert() {
        let (mut server, mut client) = connect(64 * 1024, &[&rustls::version::TLS13]).await;
        // An application-data record that does not decrypt, under the client's TLS.
        let raw = client.get_mut().0;
        raw.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).await.unwrap();
        raw.write_all(&[0x42; 0x20]).await.unwrap();
        let err = server.read(&mut [0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = server.read(&mut [0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "failed for good");
        let err = client.read(&mut [0; 64]).await.unwrap_err();
        assert!(err.to_string().contains("BadRecordMac"), "the client got the alert: {err}");
    }

    #[tokio::test]
    async fn a_bad_client_hello_gets_an_alert() {
        let (server_config, _) = configs(&[&rustls::version::TLS13]);
        let (mut client_io, server_io) = duplex(1024);
        let hello = vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00];
        let server = tokio::spawn(TlsStream::accept(server_io, server_config, hello));
        assert!(server.await.unwrap().is_err());
        let mut alert = [0; 7];
        client_io.read_exact(&mut alert).await.unwrap();
        assert_eq!(alert[0], 0x15, "a plaintext alert record");
        assert_eq!(alert[5], 2, "fatal");
    }

    #[tokio::test]
    async fn a_peer_that_leaves_mid_handshake_ends_it() {
        let (server_config, connector) = configs(&[&rustls::version::TLS13]);
        let (client_io, mut server_io) = duplex(64 * 1024);
        let client = tokio::spawn(async move {
            let name = ServerName::try_from("localhost").unwrap();
            // Sends the ClientHello, then is dropped before the rest.
            tokio::time::timeout(std::time::Duration::from_millis(1), connector.connect(name, client_io))
                .await
                .ok();
        });
        let Opening::Tls(first) = read_opening(&mut server_io).await else { panic!("no ClientHello") };
        client.await.unwrap();
        let err = TlsStream::accept(server_io, server_config, first).await.err().expect("no handshake");
        assert!(matches!(err.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe), "{err}");
    }
}
