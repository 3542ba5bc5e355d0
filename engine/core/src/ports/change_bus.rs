//! Run changes shared between servers. Live changes start where a run is
//! driven, on one server; each server publishes its own and hears the
//! others', so the API of any server streams every run's changes. Best
//! effort by design: a change lost while the bus is down only delays a
//! page, which reads the run itself on each change it hears and on each
//! reconnect; nothing a run records travels here.

use async_trait::async_trait;

use crate::Error;

/// The bus between servers.
#[async_trait]
pub trait ChangeBus: Send + Sync {
    /// Sends one change (its JSON) to every server listening now.
    async fn publish(&self, change: &[u8]) -> Result<(), Error>;

    /// Hands `deliver` each change published from now on (this server's
    /// too) until the connection fails; the caller listens again.
    async fn listen(&self, deliver: &(dyn Fn(Vec<u8>) + Send + Sync)) -> Result<(), Error>;
}
