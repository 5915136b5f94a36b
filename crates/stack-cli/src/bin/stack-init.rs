//! `stack-init`: what lives on the host per container, the container's
//! monitor and its PID 1, and the process of an `exec`. The runtime runs
//! it (through a read-only view, see stack_runtime's `seal`) in place of
//! the whole `stack` binary when it is installed beside it: a binary of
//! this one job has a fraction of the pages every such process maps and
//! relocates.

fn main() {
    let mut argv = std::env::args();
    match argv.nth(1).as_deref() {
        Some(stack_runtime::INIT_ARG) => {
            stack_runtime::init_main(&argv.next().unwrap_or_default(), argv.next().as_deref())
        }
        Some(stack_runtime::EXEC_ARG) => stack_runtime::exec_main(&argv.next().unwrap_or_default()),
        _ => {
            eprintln!("stack-init: run by stack for its containers, not by hand");
            std::process::exit(2)
        }
    }
}
