//! Bytes between a blocking thread and an HTTP body, a bounded number of
//! chunks at a time: `cp`'s archives stream through these both ways (the
//! tar is written on one side as it is read on the other), so neither the
//! engine nor the client ever holds a whole archive.
//!
//! A [`Writer`] on a blocking thread sends chunks; the other end is either
//! a [`ChunkBody`] (an HTTP body, async) or a [`Reader`] (blocking). A
//! writer dropped without [`Writer::finish`] ends the stream with an error,
//! so a cut-short archive never looks whole.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;

/// The size of a chunk.
const CHUNK: usize = 64 * 1024;

/// Chunks on their way at most (so about 0.5 MiB).
const DEPTH: usize = 8;

/// Where the chunks arrive.
pub type Chunks = tokio::sync::mpsc::Receiver<io::Result<Bytes>>;

type Sender = tokio::sync::mpsc::Sender<io::Result<Bytes>>;

/// A writer and the chunks it sends.
pub fn channel() -> (Writer, Chunks) {
    let (tx, rx) = tokio::sync::mpsc::channel(DEPTH);
    (
        Writer {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
        },
        rx,
    )
}

/// Writes chunks from a blocking thread (never from async code: it waits
/// while the channel is full).
pub struct Writer {
    tx: Option<Sender>,
    buf: Vec<u8>,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the other side went away")
}

impl Writer {
    fn send(&mut self, item: io::Result<Bytes>) -> io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.blocking_send(item).map_err(|_| gone())
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.send(Ok(chunk))
    }

    /// Sends what is left: the stream ends whole.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_buf()?;
        self.tx = None;
        Ok(())
    }

    /// Ends the stream with `e` (an HTTP body then breaks off: the other
    /// side sees an error, not an end).
    pub fn fail(mut self, e: io::Error) {
        let _ = self.send(Err(e));
        self.tx = None;
    }
}

impl io::Write for Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let _ = self.send(Err(io::Error::other("the stream was cut short")));
        }
    }
}

/// Reads chunks on a blocking thread (never in async code).
pub struct Reader {
    rx: Chunks,
    chunk: Bytes,
}

impl Reader {
    pub fn new(rx: Chunks) -> Reader {
        Reader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl io::Read for Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Chunks as an HTTP body; an error breaks it off.
pub struct ChunkBody(Arc<Mutex<Chunks>>);

/// Closes a [`ChunkBody`]'s channel from outside: its writer stops
/// waiting, even while the connection that owns the body is no longer
/// driven (a client's, once its answer came).
pub struct Closer(Arc<Mutex<Chunks>>);

impl ChunkBody {
    pub fn new(chunks: Chunks) -> ChunkBody {
        ChunkBody(Arc::new(Mutex::new(chunks)))
    }

    pub fn closer(&self) -> Closer {
        Closer(self.0.clone())
    }
}

impl Closer {
    pub fn close(self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).close();
    }
}

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(hyper::body::Frame::data)))
    }
}

/// Passes an HTTP body's bytes on to `tx`, a bounded number at a time,
/// until it ends (then `tx` is dropped: the reader's end of file), breaks
/// (the reader gets the error too) or the reader goes away.
pub async fn forward<B>(mut body: B, tx: Sender) -> io::Result<()>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let e = io::Error::other(format!("the stream broke off: {e}"));
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string()))).await;
                return Err(e);
            }
        };
        if let Ok(data) = frame.into_data() {
            if tx.send(Ok(data)).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[test]
    fn bytes_pass_whole_and_a_cut_short_stream_is_an_error() {
        let (mut w, rx) = channel();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.finish().unwrap();
        });
        let mut got = Vec::new();
        Reader::new(rx).read_to_end(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, data);

        let (mut w, rx) = channel();
        let t = std::thread::spawn(move || {
            w.write_all(b"half").unwrap();
            drop(w);
        });
        let e = Reader::new(rx).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
        t.join().unwrap();
    }
}
