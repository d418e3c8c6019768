//! The server side of a SPDY/3.1 session, as the kubelet's streaming server (moby/spdystream,
//! through `k8s.io/apimachinery/pkg/util/httpstream/spdy`) speaks it: frames as in the SPDY/3.1
//! draft (control frames with version 3; DATA frames with FIN), header blocks as one zlib stream
//! per direction primed with the SPDY/3 dictionary, SYN_STREAM answered by an empty SYN_REPLY,
//! PING echoed, RST_STREAM and GOAWAY honoured, SETTINGS and WINDOW_UPDATE read and ignored (as
//! spdystream ignores flow control).
//!
//! It runs over any byte stream: an upgraded HTTP connection (`Upgrade: SPDY/3.1`) or the byte
//! stream a WebSocket tunnel carries (`SPDY/3.1+portforward.k8s.io`). What a stream is for is
//! the caller's business: it gets each new stream's headers, its incoming data and a handle to
//! write and close it.

use std::collections::HashMap;
use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// The largest DATA frame written (the frame length field allows 16 MiB).
const MAX_DATA: usize = 32 * 1024;

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1): the
/// listed names, each with a 4-byte big-endian length, then the literal tail.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0."
        );
        let mut d = Vec::new();
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Header names (lowercase, as SPDY sends them) and values (several are NUL-separated).
pub type Headers = Vec<(String, String)>;

/// Looks a header up by name, ignoring case.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A stream the client opened: its headers and what it sends (the channel ends at its FIN or
/// RST_STREAM).
pub struct Incoming {
    pub id: u32,
    pub headers: Headers,
    pub data: mpsc::Receiver<Vec<u8>>,
    pub out: Outgoing,
}

/// Writes to one stream of the session.
#[derive(Clone)]
pub struct Outgoing {
    id: u32,
    frames: mpsc::Sender<Vec<u8>>,
}

impl Outgoing {
    /// Sends `data` as DATA frames; `false` once the session is gone.
    pub async fn send(&self, data: &[u8]) -> bool {
        for chunk in data.chunks(MAX_DATA) {
            if self.frames.send(data_frame(self.id, 0, chunk)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Half-closes the stream (an empty DATA frame with FIN), as spdystream's `Close`.
    pub async fn close(&self) {
        let _ = self.frames.send(data_frame(self.id, FLAG_FIN, &[])).await;
    }
}

fn data_frame(id: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(data);
    f
}

fn control_frame(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// The session's header compressor (server to client).
struct Encoder(Compress);

impl Encoder {
    fn new() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        let _ = c.set_dictionary(dictionary());
        Self(c)
    }

    fn encode(&mut self, headers: &Headers) -> Vec<u8> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            for s in [k, v] {
                plain.extend_from_slice(&(s.len() as u32).to_be_bytes());
                plain.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = &plain[..];
        loop {
            out.reserve(256);
            let before = self.0.total_in();
            if self.0.compress_vec(input, &mut out, FlushCompress::Sync).is_err() {
                break;
            }
            input = &input[(self.0.total_in() - before) as usize..];
            // A sync flush is complete once it leaves spare room in the output.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        out
    }
}

/// The session's header decompressor (client to server).
struct Decoder(Decompress);

impl Decoder {
    fn new() -> Self {
        Self(Decompress::new(true))
    }

    fn decode(&mut self, block: &[u8]) -> Option<Headers> {
        let mut plain = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        let mut rounds = 0;
        while rounds < 64 {
            rounds += 1;
            plain.reserve(1024);
            let before = self.0.total_in();
            match self.0.decompress_vec(input, &mut plain, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0.set_dictionary(dictionary()).ok()?;
                }
                Err(_) => return None,
            }
            input = &input[(self.0.total_in() - before) as usize..];
            if input.is_empty() && plain.len() < plain.capacity() {
                break;
            }
        }
        parse_headers(&plain)
    }
}

fn parse_headers(plain: &[u8]) -> Option<Headers> {
    let mut at = 0usize;
    let u32_at = |at: &mut usize| -> Option<usize> {
        let b = plain.get(*at..*at + 4)?;
        *at += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let n = u32_at(&mut at)?;
    let mut headers = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let len = u32_at(&mut at)?;
        let name = String::from_utf8_lossy(plain.get(at..at + len)?).to_ascii_lowercase();
        at += len;
        let len = u32_at(&mut at)?;
        let value = String::from_utf8_lossy(plain.get(at..at + len)?).into_owned();
        at += len;
        headers.push((name, value));
    }
    Some(headers)
}

/// Serves one SPDY session on `io` until the client goes away (or sends GOAWAY); each stream
/// the client opens is handed to `streams`.
pub async fn serve<T>(io: T, streams: mpsc::Sender<Incoming>)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    serve_until(io, streams, std::future::pending()).await;
}

/// [`serve`], ended by the server too once `stop` resolves: a GOAWAY, then the connection is
/// closed after what the streams have written (spdystream's `Connection.Close`).
pub async fn serve_until<T>(
    io: T,
    streams: mpsc::Sender<Incoming>,
    stop: impl std::future::Future<Output = ()>,
) where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (frames_tx, mut frames_rx) = mpsc::channel::<Vec<u8>>(256);
    let writer = tokio::spawn(async move {
        while let Some(f) = frames_rx.recv().await {
            if wr.write_all(&f).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new();
    let mut open: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut last_id = 0u32;
    tokio::pin!(stop);
    loop {
        let mut head = [0u8; 8];
        tokio::select! {
            r = rd.read_exact(&mut head) => if r.is_err() { break },
            () = &mut stop => {
                let mut p = last_id.to_be_bytes().to_vec();
                p.extend_from_slice(&0u32.to_be_bytes());
                let _ = frames_tx.send(control_frame(GOAWAY, 0, &p)).await;
                break;
            }
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        if rd.read_exact(&mut payload).await.is_err() {
            break;
        }
        if head[0] & 0x80 == 0 {
            let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            if let Some(tx) = open.get(&id) {
                if !payload.is_empty() && tx.send(payload).await.is_err() {
                    open.remove(&id);
                }
            }
            if flags & FLAG_FIN != 0 {
                open.remove(&id);
            }
            continue;
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        match kind {
            SYN_STREAM if payload.len() >= 10 => {
                let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & 0x7fff_ffff;
                last_id = last_id.max(id);
                let Some(headers) = decoder.decode(&payload[10..]) else {
                    break; // a corrupt header block ends the session, as in spdystream
                };
                let reply = {
                    let mut p = id.to_be_bytes().to_vec();
                    p.extend(encoder.encode(&Vec::new()));
                    control_frame(SYN_REPLY, 0, &p)
                };
                if frames_tx.send(reply).await.is_err() {
                    break;
                }
                let (tx, rx) = mpsc::channel(64);
                if flags & FLAG_FIN == 0 {
                    open.insert(id, tx);
                }
                let out = Outgoing { id, frames: frames_tx.clone() };
                if streams.send(Incoming { id, headers, data: rx, out }).await.is_err() {
                    break;
                }
            }
            RST_STREAM if payload.len() >= 4 => {
                let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & 0x7fff_ffff;
                open.remove(&id);
            }
            PING => {
                let _ = frames_tx.send(control_frame(PING, 0, &payload)).await;
            }
            GOAWAY => break,
            _ => {} // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do
        }
    }
    drop(open);
    drop(frames_tx);
    drop(streams);
    // Stream handlers still hold frame senders; the writer ends when they are done.
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_has_the_drafts_length_and_ends() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_through_one_zlib_stream_per_direction() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let a: Headers =
            vec![("streamtype".into(), "error".into()), ("port".into(), "8080".into())];
        let b: Headers =
            vec![("streamtype".into(), "data".into()), ("requestid".into(), "0".into())];
        assert_eq!(dec.decode(&enc.encode(&a)), Some(a));
        assert_eq!(dec.decode(&enc.encode(&b)), Some(b));
        assert_eq!(dec.decode(&enc.encode(&Vec::new())), Some(Vec::new()));
    }
}
