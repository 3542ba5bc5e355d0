//! The worker's GPUs: which it has (from its options, or from `nvidia-smi`
//! when the driver is installed), which are free, and which device each
//! GPU step holds. A GPU is never given to two steps at once.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::Notify;
use weft_core::ports::GpuSlot;

/// GPUs a step holds: free again when dropped, which the worker does only
/// once the step's end is recorded and reported, so no one sees two steps
/// on one GPU at once.
pub(crate) struct HeldGpus {
    gpus: std::sync::Arc<Gpus>,
    ids: Vec<u32>,
}

impl Drop for HeldGpus {
    fn drop(&mut self) {
        self.gpus.release(&self.ids);
    }
}

#[derive(Default)]
pub(crate) struct Gpus {
    slots: Vec<GpuSlot>,
    free: Mutex<BTreeSet<u32>>,
    freed: Notify,
}

/// The worker's GPUs, as given (by the operator, or from the CUDA driver by
/// the binary that wires the worker), else as `nvidia-smi` lists them; none
/// where there is no driver.
pub(crate) fn detect(given: Option<&[GpuSlot]>) -> Vec<GpuSlot> {
    if let Some(g) = given {
        return g.to_vec();
    }
    let Ok(out) = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total,uuid",
            "--format=csv,noheader,nounits",
        ])
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    from_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Slots from `nvidia-smi --query-gpu=index,name,memory.total,uuid` CSV.
fn from_nvidia_smi(csv: &str) -> Vec<GpuSlot> {
    csv.lines()
        .filter_map(|line| {
            let mut parts = line.split(',').map(str::trim);
            let index = parts.next()?.parse().ok()?;
            let name = parts.next()?.to_string();
            let mib: u64 = parts.next()?.parse().unwrap_or(0);
            let uuid = parts
                .next()
                .filter(|u| u.starts_with("GPU-") || u.starts_with("MIG-"))
                .map(str::to_string);
            Some(GpuSlot {
                index,
                name,
                memory_bytes: mib << 20,
                uuid,
                busy: false,
            })
        })
        .collect()
}

impl Gpus {
    pub(crate) fn new(slots: Vec<GpuSlot>) -> Self {
        let free = slots.iter().map(|g| g.index).collect();
        Self {
            slots,
            free: Mutex::new(free),
            freed: Notify::new(),
        }
    }

    pub(crate) fn total(&self) -> usize {
        self.slots.len()
    }

    fn free_count(&self) -> usize {
        self.free.lock().expect("gpu lock").len()
    }

    /// Waits until at least one GPU is free (before taking a GPU job).
    pub(crate) async fn any_free(&self) {
        loop {
            let notified = self.freed.notified();
            if self.free_count() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Waits for `n` free GPUs (at most `total`) and holds them.
    pub(crate) async fn acquire(&self, n: usize) -> Vec<u32> {
        loop {
            let notified = self.freed.notified();
            {
                let mut free = self.free.lock().expect("gpu lock");
                if free.len() >= n {
                    let ids: Vec<u32> = free.iter().take(n).copied().collect();
                    for id in &ids {
                        free.remove(id);
                    }
                    return ids;
                }
            }
            notified.await;
        }
    }

    /// How `CUDA_VISIBLE_DEVICES` and container requests name these GPUs.
    pub(crate) fn device_ids(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|id| {
                self.slots
                    .iter()
                    .find(|g| g.index == *id)
                    .map_or_else(|| id.to_string(), GpuSlot::device_id)
            })
            .collect()
    }

    /// Holds `ids` (from [`Gpus::acquire`]) until the guard is dropped.
    pub(crate) fn hold(self: &std::sync::Arc<Self>, ids: Vec<u32>) -> HeldGpus {
        HeldGpus {
            gpus: self.clone(),
            ids,
        }
    }

    pub(crate) fn release(&self, ids: &[u32]) {
        self.free.lock().expect("gpu lock").extend(ids);
        self.freed.notify_waiters();
    }

    /// The slots with what is busy now, for heartbeats.
    pub(crate) fn snapshot(&self) -> Vec<GpuSlot> {
        let free = self.free.lock().expect("gpu lock");
        self.slots
            .iter()
            .map(|g| GpuSlot {
                busy: !free.contains(&g.index),
                ..g.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32) -> GpuSlot {
        GpuSlot {
            index,
            name: "Test".into(),
            memory_bytes: 0,
            uuid: None,
            busy: false,
        }
    }

    #[test]
    fn nvidia_smi_lines_become_slots_named_by_uuid() {
        let csv = "0, NVIDIA H100 80GB HBM3, 81559, GPU-2b5f1344-9c01-4e8a-b36d-0011223344ff\n\
                   1, NVIDIA A10, [N/A], [N/A]\n\
                   garbage\n";
        let slots = from_nvidia_smi(csv);
        assert_eq!(slots.len(), 2, "{slots:?}");
        assert_eq!(slots[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(slots[0].memory_bytes, 81559 << 20);
        assert_eq!(
            slots[0].device_id(),
            "GPU-2b5f1344-9c01-4e8a-b36d-0011223344ff"
        );
        assert_eq!(
            (slots[1].memory_bytes, slots[1].device_id()),
            (0, "1".into())
        );
        let gpus = Gpus::new(slots);
        assert_eq!(
            gpus.device_ids(&[1, 0]),
            vec!["1", "GPU-2b5f1344-9c01-4e8a-b36d-0011223344ff"]
        );
    }

    #[tokio::test]
    async fn a_gpu_is_held_by_one_step_at_a_time() {
        let gpus = std::sync::Arc::new(Gpus::new(vec![gpu(0), gpu(1)]));
        let a = gpus.acquire(1).await;
        let b = gpus.acquire(1).await;
        assert_ne!(a, b);
        assert!(gpus.snapshot().iter().all(|g| g.busy));
        let waiting = {
            let gpus = gpus.clone();
            tokio::spawn(async move { gpus.acquire(2).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "two GPUs are not free yet");
        gpus.release(&a);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        gpus.release(&b);
        let both = waiting.await.unwrap();
        assert_eq!(both, vec![0, 1]);
        assert_eq!(detect(Some(&[gpu(3)]))[0].index, 3);
    }
}
