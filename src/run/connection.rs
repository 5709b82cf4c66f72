//! The Graph a run talks to: a client, and whatever serves it for as long as the command runs
//! (the in-process emulator of `--emulate`). The command line builds it (`cli/target.rs`), so
//! that the runs here never depend on how Graph is reached, nor on the emulator.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::graph::GraphClient;

/// Stops what serves a connection's Graph, once the command is done with it.
type Stop = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A Graph to talk to, and what serves it when rehearsing.
pub(crate) struct Connection {
    pub(crate) client: Arc<GraphClient>,
    stop: Option<Stop>,
}

impl Connection {
    /// A connection to a Graph that outlives the command (the real one).
    pub(crate) fn direct(client: GraphClient) -> Connection {
        Connection {
            client: Arc::new(client),
            stop: None,
        }
    }

    /// A connection to a Graph served for this command only; `stop` ends it.
    pub(crate) fn served(
        client: GraphClient,
        stop: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Connection {
        Connection {
            client: Arc::new(client),
            stop: Some(Box::new(stop)),
        }
    }

    /// Stops the rehearsal emulator, if any (its `--state` is saved as it stops).
    pub(crate) async fn close(self) {
        if let Some(stop) = self.stop {
            stop().await;
        }
    }
}

/// How a run gets its [`Connection`]: connects (or starts the emulator) when the run needs
/// Graph, inside the run's tokio runtime.
pub(crate) trait Connect {
    async fn connect(&self) -> crate::Result<Connection>;

    /// The local files the Graph is served from (`--emulate`'s tenant file, `--state`), which
    /// no output of the command may replace.
    fn files(&self) -> Vec<&Path>;
}
