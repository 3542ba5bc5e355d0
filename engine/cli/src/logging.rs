//! Where the engine's log lines go: standard error, as text for people
//! (`WEFT_LOG_FORMAT=json` for one JSON object a line), filtered by
//! `WEFT_LOG` (a `tracing` filter such as `debug` or
//! `weft_worker=debug,warn`; default: the engine's warnings and notices).

use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str =
    "warn,weft_orchestrator=info,weft_worker=info,weft_api=info,weft_queue_amqp=info,weft_store_redis=info";

/// Installs the subscriber once, at start.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    let installed = if std::env::var("WEFT_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Only fails if one is installed already, which is fine.
    let _ = installed;
}
