//! `stack-dns`: the DNS server of a store's networks, which the engine
//! runs in place of `stack __stack-dns` when it is installed beside it
//! (and of our build: its bytes hold the runtime's `BUILD_MARK`, which it
//! names here). It lives as long as networks do, so its pages count: a
//! binary of this one job maps a fraction of what `stack` would.

use std::process::ExitCode;

fn main() -> ExitCode {
    let root = std::env::var_os("STACK_ROOT");
    match (std::env::args().nth(1).as_deref(), root) {
        (Some(stack_net::dns::SERVER_ARG), Some(root)) => {
            // Long-lived: nothing of whoever started it is held open.
            stack_runtime::close_inherited_fds(&[]);
            stack_net::dns::server_main(std::path::Path::new(&root))
        }
        _ => {
            eprintln!(
                "stack-dns ({}): run by stack for its networks, with STACK_ROOT set; not by hand",
                stack_runtime::BUILD_MARK
            );
            ExitCode::from(2)
        }
    }
}
