//! The client's side of `stack exec` and `stack run`: the engine relays
//! the command's streams over the request's upgraded connection
//! (stack-api's `session`); the client puts its terminal in raw mode,
//! sends its input, its terminal's size and the signals it gets, prints
//! the output, and exits with the command's code.

use std::io::Write as _;

use anyhow::bail;
use stack_api::session::{frame, read_frame, size_payload, Kind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

/// Client side: relays our terminal (or pipes) to the session on `io`
/// until the command ends; its exit code.
pub async fn attach(
    io: impl AsyncRead + AsyncWrite + Send + 'static,
    tty: bool,
    interactive: bool,
) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                break;
            }
        }
    });
    let _raw = tty.then(stack_runtime::RawMode::enable);
    let forward = |kind: SignalKind, what: Box<dyn Fn() -> Vec<u8> + Send>| -> anyhow::Result<()> {
        let mut s = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(what()).is_err() {
                    break;
                }
            }
        });
        Ok(())
    };
    if tty {
        // Its size now and whenever ours changes; keys (Ctrl-C too) go as input.
        let size = || {
            let (rows, cols) = stack_runtime::terminal_size().unwrap_or((24, 80));
            frame(Kind::Resize, &size_payload(rows, cols))
        };
        let _ = tx.send(size());
        forward(SignalKind::window_change(), Box::new(size))?;
    } else {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            forward(
                SignalKind::from_raw(sig),
                Box::new(move || frame(Kind::Signal, &sig.to_be_bytes())),
            )?;
        }
    }
    if interactive {
        let tx = tx.clone();
        // A thread: reading stdin blocks, and may go on after the command
        // ended (the process exits then).
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut buf = vec![0u8; 32 * 1024];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if tx.send(frame(Kind::Stdin, &buf[..n])).is_err() {
                    return;
                }
            }
            let _ = tx.send(frame(Kind::StdinEnd, &[]));
        });
    } else {
        let _ = tx.send(frame(Kind::StdinEnd, &[]));
    }
    loop {
        match read_frame(&mut rd).await {
            Ok(Some((Kind::Stdout, data))) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&data)?;
                out.flush()?;
            }
            Ok(Some((Kind::Stderr, data))) => std::io::stderr().write_all(&data)?,
            Ok(Some((Kind::Exit, data))) => {
                return stack_api::session::parse_i32(&data)
                    .ok_or_else(|| anyhow::anyhow!("the engine sent a malformed exit code"));
            }
            Ok(Some(_)) => bail!("the engine sent a frame a client does not expect"),
            Ok(None) => bail!("the engine ended the session before the command did (see its log)"),
            Err(e) => bail!("the session with the engine broke: {e}"),
        }
    }
}
