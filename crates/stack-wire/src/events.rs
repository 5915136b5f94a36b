//! Where an engine call reports what it does: a channel of [`Event`]s that
//! the API's server turns into a response body (or a test reads), paced so
//! that a call producing more than its client takes holds no more than
//! [`PACE`] events in memory.

use std::sync::Arc;

use crate::Event;

/// Where an engine call reports progress; the client reads it line by line.
#[derive(Clone)]
pub struct Events {
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
    /// Events sent and not yet taken by the response's body (when a
    /// response takes them): what `send_paced` waits on.
    in_flight: Option<Arc<InFlight>>,
}

#[derive(Default)]
struct InFlight {
    count: std::sync::Mutex<usize>,
    taken: std::sync::Condvar,
}

/// `send_paced` waits while this many events are on their way.
pub const PACE: usize = 1024;

impl Events {
    /// Events and where they arrive: for engines driven without a server
    /// (tests, the engine's own work).
    pub fn channel() -> (Events, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Events {
                tx,
                in_flight: None,
            },
            rx,
        )
    }

    /// Events whose receiver tells what it took ([`Taken::one`]): the
    /// pace of `send_paced` (a server's response body).
    pub fn paced() -> (Events, tokio::sync::mpsc::UnboundedReceiver<Event>, Taken) {
        let (mut events, rx) = Events::channel();
        let in_flight = Arc::new(InFlight::default());
        events.in_flight = Some(in_flight.clone());
        (events, rx, Taken(in_flight))
    }

    pub fn send(&self, e: Event) {
        if let Some(f) = &self.in_flight {
            *f.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        }
        let _ = self.tx.send(e);
    }

    /// Sends, first waiting (from a blocking thread) while [`PACE`] events
    /// are still on their way to the client: a call that can produce more
    /// than a client reads (logs) holds no more than that in memory.
    pub fn send_paced(&self, e: Event) {
        if let Some(f) = &self.in_flight {
            let mut count = f.count.lock().unwrap_or_else(|p| p.into_inner());
            while *count >= PACE && !self.gone() {
                count = f
                    .taken
                    .wait_timeout(count, std::time::Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        self.send(e);
    }

    /// The client went away (a call that would go on forever, such as
    /// following logs, stops then).
    pub fn gone(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The receiving side's count of what it took from [`Events::paced`].
#[derive(Clone)]
pub struct Taken(Arc<InFlight>);

impl Taken {
    /// One event left the channel: a paced sender may go on.
    pub fn one(&self) {
        let mut count = self.0.count.lock().unwrap_or_else(|p| p.into_inner());
        *count = count.saturating_sub(1);
        self.0.taken.notify_all();
    }
}
