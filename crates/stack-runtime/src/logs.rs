//! The container's output as JSON lines (Docker's json-file format), written
//! by the container's monitor process, which outlives any engine.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Copies both pipes into `out` as records, line by line, until both close.
pub fn pump(stdout: OwnedFd, stderr: OwnedFd, out: &mut impl Write) -> io::Result<()> {
    let mut streams = vec![
        (stdout, "stdout", Vec::new()),
        (stderr, "stderr", Vec::new()),
    ];
    let mut buf = vec![0u8; 16 * 1024];
    while !streams.is_empty() {
        let mut fds: Vec<PollFd> = streams
            .iter()
            .map(|(fd, _, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
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
        for (i, (fd, name, pending)) in streams.iter_mut().enumerate() {
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

fn emit(out: &mut impl Write, stream: &str, bytes: Vec<u8>) -> io::Result<()> {
    let r = Record {
        log: String::from_utf8_lossy(&bytes).into_owned(),
        stream: stream.to_string(),
        time: crate::state::now_rfc3339(),
    };
    let mut line = serde_json::to_vec(&r).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
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
    fn pipes_become_json_lines() {
        let (or, ow) = nix::unistd::pipe().unwrap();
        let (er, ew) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&ow, b"one\ntw").unwrap();
        nix::unistd::write(&ew, b"oops\n").unwrap();
        nix::unistd::write(&ow, b"o\nno newline").unwrap();
        drop(ow);
        drop(ew);
        let mut out = Vec::new();
        pump(or, er, &mut out).unwrap();
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
