//! Any bytes as a layer: whatever the unpacker makes of them, nothing
//! outside its destination changes. The first byte chooses how the rest is
//! read: even, as entries of the hostile alphabet the property tests use
//! (`crates/stack-image/tests/support/hostile.rs`, included here, so both
//! check the same way); odd, as a raw (possibly gzipped) tar.
//!
//! Run as root (device nodes, `trusted.*`, chroot): every unpack happens on
//! one worker thread chrooted into a fresh directory of its own
//! (`unshare(CLONE_FS)`), printed at start and left behind, so that an
//! escape found here reaches sentinels, never the host; libFuzzer's corpus
//! and artifacts stay on the other threads' root. A failed check panics on
//! the worker, which libfuzzer-sys turns into an abort: the input is kept.
#![no_main]

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/stack-image/tests/support/hostile.rs"]
mod hostile;

type Worker = (SyncSender<Vec<u8>>, Receiver<()>);

static WORKER: OnceLock<Mutex<Worker>> = OnceLock::new();

fn worker() -> Mutex<Worker> {
    let dir = hostile::jail_dir("fuzz");
    eprintln!("unpack: the unpacks run chrooted in {}", dir.display());
    let (inputs, input) = sync_channel::<Vec<u8>>(0);
    let (done, dones) = sync_channel(0);
    std::thread::spawn(move || {
        hostile::enter_jail(&dir);
        for data in input {
            check(&data);
            if done.send(()).is_err() {
                break;
            }
        }
    });
    Mutex::new((inputs, dones))
}

/// What the worker does with one input (and `any_bytes_stay_inside` in
/// `tests/unpack_props.rs` with random ones).
fn check(data: &[u8]) {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            let ops = hostile::ops_from_bytes(rest);
            hostile::unpack_and_check(|sb| hostile::layer(&ops, sb));
        }
        Some((_, rest)) => {
            hostile::unpack_and_check(|_| rest.to_vec());
        }
        None => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let worker = WORKER.get_or_init(worker).lock().unwrap();
    worker.0.send(data.to_vec()).unwrap();
    worker
        .1
        .recv()
        .expect("the unpack worker died: its check failed");
});
