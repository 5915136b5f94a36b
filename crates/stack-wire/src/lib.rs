//! What travels between the CLI and the engine (the JSON of the engine's
//! API, field names as on the wire) and the sink an engine call reports its
//! events into. Plain serde types and a channel: the engine's decisions
//! (`stack-engine`) use them without compiling an HTTP stack.

mod events;
pub mod query;
mod types;

pub use events::{Events, Taken, PACE};
pub use types::*;
