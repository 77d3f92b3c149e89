//! The first bytes on the TLS port: the ClientHello's record read whole
//! (into a buffer that grows only as bytes arrive), or an HTTP request line
//! from a client that forgot the `s` in https.

use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, ReadBuf};

/// What the first bytes of a connection to the TLS port were.
#[derive(Debug)]
pub enum Opening {
    /// The first TLS record, whole, and whatever came with it in the same
    /// read (or whatever came before an oddity that rustls should judge).
    Tls(Vec<u8>),
    /// An HTTP request line: the client forgot the `s` in https.
    PlainHttp,
    /// The peer closed or failed before sending a record.
    Gone,
}

/// Reads the first TLS record (the ClientHello): one read of up to 2 KiB
/// takes a whole ClientHello in the usual case; a longer or slower one goes
/// into a buffer that grows only as bytes arrive, so a peer that stalls
/// mid-handshake holds a few bytes here instead of rustls's 8 KiB of buffers.
pub async fn read_opening<S: AsyncRead + Unpin>(stream: &mut S) -> Opening {
    use tokio::io::AsyncReadExt;
    const HEADER: usize = 5;
    /// A TLS record's largest length field (RFC 8446 §5.2, with expansion).
    const MAX_RECORD: usize = 16384 + 2048;
    /// Room for a ClientHello with a post-quantum key share. The buffer is
    /// on the stack of one poll, never in the connection's task.
    const FIRST_READ: usize = 2048;
    let mut record: Vec<u8> = Vec::new();
    let first = std::future::poll_fn(|cx| {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut read = ReadBuf::uninit(&mut buf);
        std::task::ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
        record.extend_from_slice(read.filled());
        Poll::Ready(io::Result::Ok(()))
    })
    .await;
    if first.is_err() || record.is_empty() {
        return Opening::Gone;
    }
    let mut wanted = HEADER;
    loop {
        if record[0].is_ascii_uppercase() {
            return Opening::PlainHttp;
        }
        if record[0] != 0x16 {
            // Not a handshake record: rustls will say what is wrong.
            return Opening::Tls(record);
        }
        if record.len() >= HEADER && wanted == HEADER {
            let length = usize::from(u16::from_be_bytes([record[3], record[4]]));
            wanted = HEADER + length.min(MAX_RECORD);
        }
        if record.len() >= wanted {
            return Opening::Tls(record);
        }
        record.reserve_exact((wanted - record.len()).min(1024));
        match stream.read_buf(&mut record).await {
            Ok(0) | Err(_) => return Opening::Gone,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_opening_record_is_read_whole_even_in_pieces() {
        let record = [0x16, 0x03, 0x01, 0x00, 0x03, 0xaa, 0xbb, 0xcc, 0xdd];
        let mut stream: &[u8] = &record;
        let Opening::Tls(first) = read_opening(&mut stream).await else { panic!("not TLS") };
        assert_eq!(first, record, "one read takes the record and what came with it");

        let (mut client, mut server) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move { read_opening(&mut server).await });
        for piece in [&record[..2], &record[2..6], &record[6..]] {
            tokio::io::AsyncWriteExt::write_all(&mut client, piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        let Opening::Tls(joined) = reader.await.unwrap() else { panic!("not TLS") };
        assert!(joined.starts_with(&record[..8]), "the whole first record: {joined:?}");
    }

    #[tokio::test]
    async fn plain_http_and_early_close_are_recognised() {
        let mut http: &[u8] = b"GET / HTTP/1.1\r\n";
        assert!(matches!(read_opening(&mut http).await, Opening::PlainHttp));
        let mut short: &[u8] = &[0x16, 0x03];
        assert!(matches!(read_opening(&mut short).await, Opening::Gone));
    }
}
