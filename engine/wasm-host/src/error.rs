use std::path::PathBuf;

/// Why a plugin could not be loaded or a call into it failed. Call errors
/// name the plugin (`name@version`) and the export.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "plugin {plugin}: `{export}` ran past its deadline of {timeout_ms} ms and was stopped"
    )]
    Deadline {
        plugin: String,
        export: &'static str,
        timeout_ms: u64,
    },
    #[error(
        "plugin {plugin}: `{export}` went over its memory cap of {cap_mib} MiB and was stopped"
    )]
    Memory {
        plugin: String,
        export: &'static str,
        cap_mib: u64,
    },
    #[error("plugin {plugin}: `{export}` overflowed its stack and was stopped")]
    Stack {
        plugin: String,
        export: &'static str,
    },
    #[error("plugin {plugin}: `{export}` trapped: {message}")]
    Trap {
        plugin: String,
        export: &'static str,
        message: String,
    },
    #[error("plugin {plugin}: `{export}` failed: {message}")]
    Returned {
        plugin: String,
        export: &'static str,
        message: String,
    },
    #[error("plugin {plugin}: `{export}` returned {size} bytes; the limit is {max} bytes")]
    Output {
        plugin: String,
        export: &'static str,
        size: usize,
        max: usize,
    },
    #[error("plugin {plugin}: `{export}` returned {what} that is not valid JSON: {message}")]
    NotJson {
        plugin: String,
        export: &'static str,
        what: &'static str,
        message: String,
    },
    #[error("plugin {plugin} implements the {world} world, which has no `{export}`")]
    WrongWorld {
        plugin: String,
        world: &'static str,
        export: &'static str,
    },
    #[error("plugin {plugin}: starting an instance: {message}")]
    Instantiate { plugin: String, message: String },
    #[error("{0}")]
    NotComponent(String),
    #[error("the plugin implements no weft world: {0}")]
    NoWorld(String),
    #[error("the plugin imports what weft does not provide: {0}")]
    Imports(String),
    #[error("compiling the plugin: {0}")]
    Compile(String),
    #[error("the plugin is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("plugin cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("setting up the plugin engine: {0}")]
    Engine(String),
    #[error("{0}")]
    BadName(String),
    #[error("compiling the plugin took longer than {0} s")]
    CompileTimeout(u64),
    #[error(transparent)]
    Store(#[from] weft_core::Error),
}
