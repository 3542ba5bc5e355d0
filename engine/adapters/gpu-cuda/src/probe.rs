//! Whether the CUDA libraries are here, asked without touching them:
//! cudarc panics on first use where a library is missing.

/// Whether the CUDA driver library (`libcuda.so`) can be loaded.
#[allow(unsafe_code)]
pub fn driver_present() -> bool {
    // SAFETY: loading the driver library runs its initialisers, which have
    // no preconditions; the handle is dropped at once.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether NVRTC (`libnvrtc.so`), which compiles `.cu` sources, can be loaded.
#[allow(unsafe_code)]
pub fn nvrtc_present() -> bool {
    // SAFETY: as for `driver_present`.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}
