//! The container's output as JSON lines (Docker's json-file format), written
//! by the container's monitor process, which outlives any engine.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Where records go: anything written, plus a hook to rotate after each record.
pub trait Sink: Write {
    fn rotate_if_needed(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Vec<u8> {}

/// A log file rotated Docker's way: past `max_size` bytes, `log` becomes
/// `log.1` (older ones shift up), keeping at most `max_files` files in all.
pub struct RotatingFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
}

impl RotatingFile {
    pub fn open(path: &std::path::Path, max_size: Option<u64>, max_files: u32) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for RotatingFile {
    fn rotate_if_needed(&mut self) -> io::Result<()> {
        let Some(max) = self.max_size else {
            return Ok(());
        };
        if self.size < max {
            return Ok(());
        }
        let name = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            std::path::PathBuf::from(p)
        };
        if self.max_files > 1 {
            for i in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(&self.path, name(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Copies both pipes into `out` as records, line by line, until both close;
/// with `echo`, each also as it comes to a descriptor of its own (while
/// that can be written: a reader gone does not stop the log).
pub fn pump(
    stdout: OwnedFd,
    stderr: OwnedFd,
    out: &mut impl Sink,
    echo: Option<(BorrowedFd<'_>, BorrowedFd<'_>)>,
) -> io::Result<()> {
    let (echo_out, echo_err) = echo.unzip();
    let mut streams = vec![
        (stdout, "stdout", Vec::new(), echo_out),
        (stderr, "stderr", Vec::new(), echo_err),
    ];
    let mut buf = vec![0u8; 16 * 1024];
    while !streams.is_empty() {
        let mut fds: Vec<PollFd> = streams
            .iter()
            .map(|(fd, ..)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut closed = Vec::new();
        for (i, (fd, name, pending, echo)) in streams.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            let n = match nix::unistd::read(&*fd, &mut buf) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                if !pending.is_empty() {
                    emit(out, name, std::mem::take(pending))?;
                }
                closed.push(i);
                continue;
            }
            if let Some(to) = echo {
                if crate::tty::write_all(*to, &buf[..n]).is_err() {
                    *echo = None;
                }
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                emit(out, name, line)?;
            }
            // Docker splits very long lines too.
            if pending.len() >= 16 * 1024 {
                emit(out, name, std::mem::take(pending))?;
            }
        }
        for i in closed.into_iter().rev() {
            streams.remove(i);
        }
    }
    Ok(())
}

fn emit(out: &mut impl Sink, stream: &str, bytes: Vec<u8>) -> io::Result<()> {
    let r = Record {
        log: String::from_utf8_lossy(&bytes).into_owned(),
        stream: stream.to_string(),
        time: crate::state::now_rfc3339(),
    };
    let mut line = serde_json::to_vec(&r).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()?;
    out.rotate_if_needed()
}

/// Reads a log file as it grows: each call returns the whole records
/// written since the last (a half-written last line waits for the next
/// call; a rotated file is read again from its start).
pub struct Follower {
    path: std::path::PathBuf,
    offset: usize,
}

impl Follower {
    pub fn new(path: std::path::PathBuf) -> Follower {
        Follower { path, offset: 0 }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// New records, and the line numbers (in this chunk) of damaged ones.
    pub fn read_new(&mut self) -> (Vec<Record>, Vec<usize>) {
        let text = std::fs::read(&self.path).unwrap_or_default();
        if text.len() < self.offset {
            self.offset = 0;
        }
        let end = text[self.offset..]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(self.offset, |p| self.offset + p + 1);
        let chunk = String::from_utf8_lossy(&text[self.offset..end]).to_string();
        self.offset = end;
        read(&chunk)
    }

    /// Whether the file holds more than was read.
    pub fn behind(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() as usize > self.offset)
    }
}

/// Reads the records of a log file; a damaged line is skipped with its number reported.
pub fn read(text: &str) -> (Vec<Record>, Vec<usize>) {
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(_) => bad.push(i + 1),
        }
    }
    (records, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("stack-logs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        let mut f = RotatingFile::open(&path, Some(100), 3).unwrap();
        for i in 0..20 {
            emit(&mut f, "stdout", format!("line {i}\n").into_bytes()).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1", "container.log.2"]
        );
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.is_empty() || newest.contains("line 19"), "{newest}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pipes_become_json_lines() {
        let (or, ow) = nix::unistd::pipe().unwrap();
        let (er, ew) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&ow, b"one\ntw").unwrap();
        nix::unistd::write(&ew, b"oops\n").unwrap();
        nix::unistd::write(&ow, b"o\nno newline").unwrap();
        drop(ow);
        drop(ew);
        // Each echoed as it comes, too.
        let (echo_or, echo_ow) = nix::unistd::pipe().unwrap();
        let (echo_er, echo_ew) = nix::unistd::pipe().unwrap();
        let mut out = Vec::new();
        pump(or, er, &mut out, Some((echo_ow.as_fd(), echo_ew.as_fd()))).unwrap();
        drop((echo_ow, echo_ew));
        let echoed = |r: OwnedFd| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut s).unwrap();
            s
        };
        assert_eq!(echoed(echo_or), "one\ntwo\nno newline");
        assert_eq!(echoed(echo_er), "oops\n");
        let (records, bad) = read(std::str::from_utf8(&out).unwrap());
        assert!(bad.is_empty());
        let mut got: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.stream.clone(), r.log.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("stderr".into(), "oops\n".into()),
                ("stdout".into(), "no newline".into()),
                ("stdout".into(), "one\n".into()),
                ("stdout".into(), "two\n".into())
            ]
        );
        assert!(records[0].time.ends_with('Z'));
    }
}
