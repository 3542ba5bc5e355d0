//! Where finished spans go (`crate::trace`): an exporter to an
//! OpenTelemetry collector, when one is configured. Best effort by design:
//! recording never waits and never fails the caller; a sink that cannot
//! keep up drops spans and counts them.

use crate::trace::SpanRecord;

/// Takes finished spans.
pub trait SpanSink: Send + Sync {
    /// Takes `spans` without waiting.
    fn record(&self, spans: Vec<SpanRecord>);
}
