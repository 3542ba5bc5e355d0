//! The GPUs the CUDA driver sees, as the slots a worker offers.
//!
//! The driver numbers devices fastest first unless `CUDA_DEVICE_ORDER`
//! says otherwise, and `nvidia-smi` and Docker number them by PCI address,
//! so an ordinal means different GPUs to different tools. Slots are
//! numbered in PCI order (as an operator sees them in `nvidia-smi`) and
//! carry the GPU's UUID, by which steps are handed their GPUs: a UUID means
//! the same GPU to every tool.

use std::panic::catch_unwind;

use cudarc::driver::result;
use cudarc::driver::sys::{CUdevice_attribute, CUresult};
use weft_core::ports::GpuSlot;

use crate::{driver_present, Error};

/// One GPU as the driver describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Domain, bus and device of its PCI address.
    pub(crate) pci: (i32, i32, i32),
    pub(crate) name: String,
    pub(crate) memory_bytes: u64,
    pub(crate) uuid: [u8; 16],
}

/// The GPUs visible to this process (through `CUDA_VISIBLE_DEVICES` too),
/// in PCI order; an empty list where the driver is missing.
pub fn devices() -> Result<Vec<GpuSlot>, Error> {
    if !driver_present() {
        return Ok(Vec::new());
    }
    // cudarc panics where a symbol is missing from an old driver.
    let found = catch_unwind(query).map_err(|_| {
        Error::Driver("the CUDA driver lacks a function weft needs (is it older than 12.0?)".into())
    })??;
    Ok(slots(found))
}

#[allow(unsafe_code)]
fn query() -> Result<Vec<Found>, Error> {
    let driver = |what: &str, e: result::DriverError| Error::Driver(format!("{what}: {e}"));
    match result::init() {
        // The driver is installed, but this machine (or container) has no GPU.
        Err(result::DriverError(CUresult::CUDA_ERROR_NO_DEVICE)) => return Ok(Vec::new()),
        other => other.map_err(|e| driver("cuInit", e))?,
    }
    let count = result::device::get_count().map_err(|e| driver("counting GPUs", e))?;
    let mut found = Vec::new();
    for ordinal in 0..count {
        let dev = result::device::get(ordinal).map_err(|e| driver("cuDeviceGet", e))?;
        let attribute = |a| {
            // SAFETY: `dev` came from cuDeviceGet.
            unsafe { result::device::get_attribute(dev, a) }
                .map_err(|e| driver("reading a PCI address", e))
        };
        let pci = (
            attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
            attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
            attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?,
        );
        // SAFETY: `dev` came from cuDeviceGet.
        let memory = unsafe { result::device::total_mem(dev) }
            .map_err(|e| driver("reading a GPU's memory", e))?;
        let uuid = result::device::get_uuid(dev).map_err(|e| driver("cuDeviceGetUuid", e))?;
        found.push(Found {
            pci,
            name: result::device::get_name(dev).map_err(|e| driver("cuDeviceGetName", e))?,
            memory_bytes: memory as u64,
            uuid: uuid.bytes.map(|b| b as u8),
        });
    }
    Ok(found)
}

/// Slots numbered in PCI order.
pub(crate) fn slots(mut found: Vec<Found>) -> Vec<GpuSlot> {
    found.sort_by_key(|f| f.pci);
    found
        .into_iter()
        .zip(0..)
        .map(|(f, index)| GpuSlot {
            index,
            name: f.name,
            memory_bytes: f.memory_bytes,
            uuid: Some(uuid_text(&f.uuid)),
            busy: false,
        })
        .collect()
}

/// A UUID written as `nvidia-smi` and `CUDA_VISIBLE_DEVICES` write it:
/// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex = |r: std::ops::Range<usize>| {
        bytes[r]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(pci_bus: i32, name: &str, first: u8) -> Found {
        let mut uuid = [0u8; 16];
        uuid[0] = first;
        Found {
            pci: (0, pci_bus, 0),
            name: name.into(),
            memory_bytes: 80 << 30,
            uuid,
        }
    }

    #[test]
    fn slots_are_numbered_by_pci_address_and_named_by_uuid() {
        // The driver's fastest-first order put the H100 on bus 0x41 first.
        let slots = slots(vec![found(0x41, "H100", 0xab), found(0x1b, "A10", 0x01)]);
        assert_eq!(slots[0].index, 0);
        assert_eq!(slots[0].name, "A10");
        assert_eq!(
            slots[0].uuid.as_deref(),
            Some("GPU-01000000-0000-0000-0000-000000000000")
        );
        assert_eq!(slots[1].index, 1);
        assert_eq!(slots[1].name, "H100");
        assert_eq!(
            slots[1].device_id(),
            "GPU-ab000000-0000-0000-0000-000000000000"
        );
        assert_eq!(slots[1].memory_bytes, 80 << 30);
    }

    #[test]
    fn uuids_are_written_as_nvidia_smi_writes_them() {
        let bytes = [
            0x2b, 0x5f, 0x13, 0x44, 0x9c, 0x01, 0x4e, 0x8a, 0xb3, 0x6d, 0x00, 0x11, 0x22, 0x33,
            0x44, 0xff,
        ];
        assert_eq!(
            uuid_text(&bytes),
            "GPU-2b5f1344-9c01-4e8a-b36d-0011223344ff"
        );
    }

    #[test]
    fn no_driver_means_no_gpus_and_a_driver_names_each_by_uuid() {
        if !driver_present() {
            assert_eq!(devices().unwrap(), Vec::new());
        } else {
            let found = devices().unwrap();
            assert!(found.iter().all(|g| g.uuid.is_some()), "{found:?}");
        }
    }
}
