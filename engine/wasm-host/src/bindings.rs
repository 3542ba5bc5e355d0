//! Rust bindings for the `weft:plugin` worlds, generated from `wit/`.

pub(crate) mod hook {
    wasmtime::component::bindgen!({
        world: "hook-plugin",
        path: "../../wit",
    });
}

pub(crate) mod step {
    wasmtime::component::bindgen!({
        world: "step-plugin",
        path: "../../wit",
        with: {
            "weft:plugin/types": super::hook::weft::plugin::types,
            "weft:plugin/host": super::hook::weft::plugin::host,
        },
    });
}

pub(crate) mod admission {
    wasmtime::component::bindgen!({
        world: "admission-plugin",
        path: "../../wit",
        with: {
            "weft:plugin/types": super::hook::weft::plugin::types,
            "weft:plugin/host": super::hook::weft::plugin::host,
        },
    });
}

pub(crate) use hook::weft::plugin::types::{Context, Level};
