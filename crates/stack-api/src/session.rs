//! Sessions: a process in a container (`exec`) whose input and output
//! travel over the request's own connection, upgraded (HTTP 101,
//! `Upgrade: stack-session`) to a stream of frames both ways.
//!
//! A frame is a kind (one byte), a length (four bytes, big-endian) and that
//! many bytes. The client sends input, the end of input, terminal sizes and
//! signals; the engine sends output, error output and, last, the exit code.

use std::io::{Read, Write};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The `Upgrade` header's protocol name.
pub const UPGRADE: &str = "stack-session";

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client to engine: bytes for the process's input.
    Stdin = 0,
    /// Engine to client: the process's output (its terminal's, with one).
    Stdout = 1,
    /// Engine to client: its error output.
    Stderr = 2,
    /// Engine to client, last: the exit code (i32).
    Exit = 3,
    /// Client to engine: no more input.
    StdinEnd = 4,
    /// Client to engine: the terminal's size (rows, columns: two u16).
    Resize = 5,
    /// Client to engine: a signal for the process (i32).
    Signal = 6,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Stdin,
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::Exit,
            4 => Kind::StdinEnd,
            5 => Kind::Resize,
            6 => Kind::Signal,
            _ => return None,
        })
    }
}

/// The largest payload a frame may have.
pub const MAX_FRAME: usize = 1 << 20;

/// One frame, encoded.
pub fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind as u8);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one frame; `None` at a clean end of the stream (between frames).
pub async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<(Kind, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let (kind, len) = parse_head(head)?;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((kind, payload)))
}

fn parse_head(head: [u8; 5]) -> std::io::Result<(Kind, usize)> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let kind =
        Kind::from_byte(head[0]).ok_or_else(|| bad(format!("unknown frame kind {}", head[0])))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(bad(format!("a frame of {len} bytes (at most {MAX_FRAME})")));
    }
    Ok((kind, len))
}

/// A resize frame's payload.
pub fn size_payload(rows: u16, cols: u16) -> Vec<u8> {
    [rows.to_be_bytes(), cols.to_be_bytes()].concat()
}

fn parse_size(p: &[u8]) -> Option<(u16, u16)> {
    match p {
        [a, b, c, d] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

/// A signal or exit frame's payload.
pub fn parse_i32(p: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(p.try_into().ok()?))
}

/// What the engine holds of a running session's process.
pub trait Control: Send + Sync + 'static {
    /// Its terminal's new size (nothing without a terminal).
    fn resize(&self, rows: u16, cols: u16);
    /// Sends it a signal.
    fn signal(&self, signal: i32);
    /// Waits until it ends; its exit code. Called once.
    fn wait(&self) -> i32;
}

/// A started process, its streams for the server to relay.
pub struct Session {
    pub stdin: Option<Box<dyn Write + Send>>,
    pub stdout: Option<Box<dyn Read + Send>>,
    pub stderr: Option<Box<dyn Read + Send>>,
    pub control: Box<dyn Control>,
}

/// Reads `r` on a thread of its own, handing each chunk to `send` until
/// its end, an error (EIO from a pty whose other side is gone), or `send`
/// saying stop (false).
pub fn pump(
    mut r: Box<dyn Read + Send>,
    mut send: impl FnMut(&[u8]) -> bool + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            if !send(&buf[..n]) {
                break;
            }
        }
    })
}

/// Waits for the process `control` holds to end, then for `readers`
/// ([`pump`]s of its output) to read what it wrote, for at most `drain`
/// more (a process it left behind may hold its output open); its exit code.
pub fn wait_drained(
    control: &dyn Control,
    readers: &[std::thread::JoinHandle<()>],
    drain: std::time::Duration,
) -> i32 {
    let code = control.wait();
    let deadline = std::time::Instant::now() + drain;
    for r in readers {
        while !r.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    code
}

/// How long output may still come after the process ended (a process it
/// left behind may hold its output open).
const DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Relays `session` over `io` until the process ends and its exit code is
/// sent. A client that goes away closes the process's input; the process
/// runs on (as `docker exec`'s does).
pub async fn relay(io: impl AsyncRead + AsyncWrite + Send + 'static, session: Session) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let control: Arc<dyn Control> = Arc::from(session.control);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let readers: Vec<_> = [
        (Kind::Stdout, session.stdout),
        (Kind::Stderr, session.stderr),
    ]
    .into_iter()
    .filter_map(|(kind, r)| Some((kind, r?)))
    .map(|(kind, r)| {
        let tx = out_tx.clone();
        pump(r, move |bytes| tx.send(frame(kind, bytes)).is_ok())
    })
    .collect();
    let waiter = control.clone();
    std::thread::spawn(move || {
        let code = wait_drained(&*waiter, &readers, DRAIN);
        let _ = out_tx.send(frame(Kind::Exit, &code.to_be_bytes()));
    });
    // Input goes through a thread: writing to a pipe may block.
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    if let Some(mut w) = session.stdin {
        std::thread::spawn(move || {
            for chunk in in_rx {
                if w.write_all(&chunk).and_then(|()| w.flush()).is_err() {
                    break;
                }
            }
            // `w` dropped: the process sees the end of its input.
        });
    }
    let input = tokio::spawn(async move {
        let mut in_tx = Some(in_tx);
        while let Ok(Some((kind, payload))) = read_frame(&mut rd).await {
            match kind {
                Kind::Stdin => {
                    if let Some(tx) = &in_tx {
                        let _ = tx.send(payload);
                    }
                }
                Kind::StdinEnd => in_tx = None,
                Kind::Resize => {
                    if let Some((rows, cols)) = parse_size(&payload) {
                        control.resize(rows, cols);
                    }
                }
                Kind::Signal => {
                    if let Some(sig) = parse_i32(&payload) {
                        control.signal(sig);
                    }
                }
                // Not the client's to send: the session is broken.
                Kind::Stdout | Kind::Stderr | Kind::Exit => break,
            }
        }
    });
    while let Some(f) = out_rx.recv().await {
        let last = f.first() == Some(&(Kind::Exit as u8));
        if wr.write_all(&f).await.is_err() || last {
            break;
        }
    }
    let _ = wr.shutdown().await;
    input.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_read_back_as_written() {
        let mut bytes = frame(Kind::Stdout, b"hello");
        bytes.extend(frame(Kind::Resize, &size_payload(24, 80)));
        bytes.extend(frame(Kind::Exit, &7i32.to_be_bytes()));
        let mut r = &bytes[..];
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some((Kind::Stdout, b"hello".to_vec()))
        );
        let (kind, p) = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!((kind, parse_size(&p)), (Kind::Resize, Some((24, 80))));
        let (kind, p) = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!((kind, parse_i32(&p)), (Kind::Exit, Some(7)));
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn malformed_frames_are_errors() {
        // An unknown kind, an oversized length, a stream cut inside a frame.
        let oversized = [&[1u8][..], &((MAX_FRAME as u32) + 1).to_be_bytes()].concat();
        let cut = frame(Kind::Stdin, b"abcdef")[..7].to_vec();
        for bytes in [vec![9, 0, 0, 0, 0], oversized, cut] {
            let mut r = &bytes[..];
            assert!(read_frame(&mut r).await.is_err(), "{bytes:?}");
        }
        assert_eq!(parse_size(&[0, 1, 2]), None);
        assert_eq!(parse_i32(&[0, 1]), None);
    }
}
