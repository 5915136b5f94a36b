//! Images: a content-addressed store of unpacked layers, and the archives
//! they come in. Layers are unpacked once per chain id into read-only
//! directories that serve as overlay lower dirs for containers.

pub mod archive;
pub mod auth;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod store;
pub mod transfer;
pub mod unpack;

use std::path::{Path, PathBuf};

pub use store::{Blob, Image, RunConfig, Store};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no such image: `{0}`")]
    NotFound(String),
    #[error("image `{0}` is used by a container: remove the container first")]
    InUse(String),
    #[error(transparent)]
    Io(#[from] stack_sys::IoError),
    #[error("`{}` is damaged: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("archive `{}`: {why}", path.display())]
    Archive { path: PathBuf, why: String },
    #[error("image `{0}` was stored without its layer blobs (before they were kept): load or pull it again")]
    NoBlobs(String),
    #[error("`{0}` is not a sha256 digest")]
    BadDigest(String),
    #[error("content does not match its digest: expected {expected}, got {got}")]
    DigestMismatch { expected: String, got: String },
    #[error(transparent)]
    Unpack(#[from] unpack::UnpackError),
}

impl ImageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ImageError::Io(stack_sys::IoError::new(path, source))
    }
}
