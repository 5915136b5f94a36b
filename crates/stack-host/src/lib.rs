//! The host side of stack: the one place that wires the real parts (the
//! runtime, the image store, the networks) to the engine.
//!
//! A [`Host`] owns its store root and reaches everything under it: the
//! engine's `Driver` ([`driver`]), the daemon that serves the API
//! ([`daemon`]), supervision, watch, the engine's side of exec, run, cp,
//! top and stats sessions, container creation from a plain configuration
//! ([`create`]), network wiring and pulls. Nothing here parses a command
//! line or prints for a user: that is the CLI's, a client of this crate.

#![recursion_limit = "256"]

pub mod build;
pub mod containers;
pub mod create;
pub mod daemon;
pub mod docker;
pub mod driver;
pub mod files;
pub mod images;
pub mod keys;
pub mod layers;
pub mod load;
pub mod network;
pub mod service;
pub mod session;
pub mod stats;
pub mod supervision;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;

pub use create::{ContainerConfig, Launch, Launched};
pub use network::DNS_ARG;
/// A named volume's name on the host (the engine's rule), for the clients.
pub use stack_engine::volume_name;

/// What went wrong on the host, by kind, where the kind is known: the
/// daemon answers each kind with its HTTP status, anything else is an
/// internal error (500).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No such container, or no such path in one (404).
    #[error("{0}")]
    NotFound(String),
    /// There, but not in a state for this: not running, running, a name
    /// taken (409).
    #[error("{0}")]
    Conflict(String),
    /// Asked in a way that cannot be done: an ambiguous id, an archive
    /// that cannot be extracted (400).
    #[error("{0}")]
    Invalid(String),
}

impl HostError {
    /// The kind of the first `HostError` in `e`'s chain.
    pub fn of(e: &anyhow::Error) -> Option<&HostError> {
        e.chain().find_map(|c| c.downcast_ref::<HostError>())
    }

    /// The HTTP status of this kind.
    pub fn status(&self) -> u16 {
        match self {
            HostError::NotFound(_) => 404,
            HostError::Conflict(_) => 409,
            HostError::Invalid(_) => 400,
        }
    }
}

/// An error of the host as the API answers it: the status of its kind
/// (a missing container or path 404, a wrong state 409, a bad request
/// 400), else 500.
pub(crate) fn api_error(e: anyhow::Error) -> stack_api::ApiError {
    stack_api::ApiError {
        status: HostError::of(&e).map_or(500, HostError::status),
        message: format!("{e:#}"),
    }
}

/// The engine of this host.
pub type HostEngine = std::sync::Arc<stack_engine::Engine<Host>>;

/// Runs `f` on a new thread; its result when it ends.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("an engine thread ended without an answer")))
}

/// The host under one store root: cheap to clone (shared).
#[derive(Clone)]
pub struct Host(Arc<Inner>);

struct Inner {
    root: PathBuf,
    /// The stores under the root, opened when first needed.
    images: OnceLock<stack_image::Store>,
    networks: OnceLock<stack_net::Store>,
    /// Where network (netlink) and registry work runs: the daemon's
    /// runtime, or one of our own made when first needed.
    handle: OnceLock<tokio::runtime::Handle>,
    own: OnceLock<tokio::runtime::Runtime>,
}

impl Host {
    /// The host whose store is under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Host {
        Host(Arc::new(Inner {
            root: root.into(),
            images: OnceLock::new(),
            networks: OnceLock::new(),
            handle: OnceLock::new(),
            own: OnceLock::new(),
        }))
    }

    /// The same, its async work on `handle`'s runtime (the daemon's).
    pub fn on_runtime(root: impl Into<PathBuf>, handle: tokio::runtime::Handle) -> Host {
        let host = Host::new(root);
        let _ = host.0.handle.set(handle);
        host
    }

    /// Whether this host makes many containers at once: the daemon's (on
    /// its runtime), so that their directories are best spread over the
    /// file system (`stack_runtime::state::claim`).
    pub fn makes_many(&self) -> bool {
        self.0.handle.get().is_some()
    }

    pub fn root(&self) -> &Path {
        &self.0.root
    }

    /// Where builds' RUN steps run: a runtime root apart from the user's
    /// containers, so that no `ps` lists them.
    pub fn build_runs(&self) -> std::path::PathBuf {
        self.0.root.join("build")
    }

    /// The image store under the root.
    pub fn images(&self) -> anyhow::Result<stack_image::Store> {
        if let Some(store) = self.0.images.get() {
            return Ok(store.clone());
        }
        let dir = self.root().join("images");
        let store = stack_image::Store::open(&dir)
            .with_context(|| format!("cannot open the image store in `{}`", dir.display()))?;
        Ok(self.0.images.get_or_init(|| store).clone())
    }

    /// The network records under the root.
    pub fn networks(&self) -> anyhow::Result<&stack_net::Store> {
        if let Some(store) = self.0.networks.get() {
            return Ok(store);
        }
        let store = stack_net::Store::open(self.root()).with_context(|| {
            format!(
                "cannot open the network records in `{}`",
                self.root().display()
            )
        })?;
        Ok(self.0.networks.get_or_init(|| store))
    }

    /// Runs `f` to its end from a thread that is not the runtime's own (a
    /// command's, a driver operation's, an API call's).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> anyhow::Result<F::Output> {
        if let Some(h) = self.0.handle.get() {
            return Ok(h.block_on(f));
        }
        let rt = match self.0.own.get() {
            Some(rt) => rt,
            None => {
                let rt = async_runtime()?;
                self.0.own.get_or_init(|| rt)
            }
        };
        Ok(rt.block_on(f))
    }
}

/// A runtime for the parts that speak HTTP or netlink.
pub fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A new container id: 64 hex digits.
pub fn random_id() -> anyhow::Result<String> {
    stack_sys::random_hex(32).context("cannot read random numbers")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status comes from the kind of the host's error, wherever it
    /// sits in the chain; the message keeps every layer.
    #[test]
    fn statuses_follow_the_kind_of_error() {
        let missing: anyhow::Result<()> =
            Err(HostError::NotFound("no such container: `x`".into()).into());
        let e = api_error(missing.context("exec").unwrap_err());
        assert_eq!(
            (e.status, e.message.as_str()),
            (404, "exec: no such container: `x`")
        );
        let busy = HostError::Conflict("container `x` is not running".into());
        assert_eq!(api_error(busy.into()).status, 409);
        assert_eq!(
            api_error(HostError::Invalid("bad".into()).into()).status,
            400
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "a file of ours");
        assert_eq!(api_error(io.into()).status, 500);
    }
}
