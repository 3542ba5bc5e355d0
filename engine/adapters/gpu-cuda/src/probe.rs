//! Whether the CUDA libraries are here, and whether they work: asked
//! without a GPU where one is not needed (NVRTC compiles on the CPU), so an
//! image or a machine can be checked before a kernel step lands on it.

use std::panic::catch_unwind;

use crate::Error;

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

/// What NVRTC did with a small kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvrtcCheck {
    /// NVRTC's version, major and minor (the CUDA toolkit's it came with).
    pub version: (i32, i32),
    /// Bytes of PTX it made of the probe kernel.
    pub ptx_bytes: usize,
}

/// A kernel of the kind steps give as `source`: one thread per element.
const PROBE_KERNEL: &str = r#"extern "C" __global__ void weft_probe(float *out, const float *in, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 2.0f * in[i];
}"#;

/// Loads NVRTC and compiles [`PROBE_KERNEL`] with it, for its default
/// architecture: what a worker does with a `source` kernel, less the GPU.
#[allow(unsafe_code)]
pub fn check_nvrtc() -> Result<NvrtcCheck, Error> {
    if !nvrtc_present() {
        return Err(Error::Nvrtc(
            "libnvrtc.so is not installed (or not on the loader's path)".into(),
        ));
    }
    // cudarc panics where a symbol is missing from an old NVRTC.
    let checked = catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid pointers to ints for NVRTC to write.
        let version = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        version
            .result()
            .map_err(|e| Error::Nvrtc(format!("asking its version: {e}")))?;
        let ptx = cudarc::nvrtc::compile_ptx(PROBE_KERNEL)
            .map_err(|e| Error::Nvrtc(format!("compiling a probe kernel: {e}")))?;
        Ok(NvrtcCheck {
            version: (major, minor),
            ptx_bytes: ptx.to_src().len(),
        })
    });
    checked.map_err(|_| {
        Error::Nvrtc("it lacks a function weft calls (is it older than 11.2?)".into())
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvrtc_is_checked_where_it_is_and_named_missing_where_it_is_not() {
        match check_nvrtc() {
            Ok(check) => {
                assert!(check.version.0 >= 11, "{check:?}");
                assert!(check.ptx_bytes > 0, "{check:?}");
            }
            Err(e) => {
                assert!(!nvrtc_present(), "NVRTC loads, yet: {e}");
                assert!(
                    e.to_string().contains("libnvrtc.so is not installed"),
                    "{e}"
                );
            }
        }
    }
}
