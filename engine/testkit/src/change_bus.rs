//! Contract for `ChangeBus`: every server listening hears each change
//! published after it started listening, whole and in order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_core::ports::ChangeBus;

/// Starts a listener on `bus` that keeps what it hears.
fn listener(bus: Arc<dyn ChangeBus>) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let keep = heard.clone();
    tokio::spawn(async move {
        let deliver = move |change: Vec<u8>| keep.lock().unwrap().push(change);
        let _ = bus.listen(&deliver).await;
    });
    heard
}

/// Publishes `probe` until a listener hears it: then it is listening.
async fn until_listening(bus: &dyn ChangeBus, heard: &[&Arc<Mutex<Vec<Vec<u8>>>>]) {
    let start = Instant::now();
    while !heard
        .iter()
        .all(|h| h.lock().unwrap().iter().any(|c| c == b"probe"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no listener heard the probe"
        );
        bus.publish(b"probe").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn every_listener_hears_each_change_whole_and_in_order(bus: Arc<dyn ChangeBus>) {
    let (a, b) = (listener(bus.clone()), listener(bus.clone()));
    until_listening(bus.as_ref(), &[&a, &b]).await;
    let changes: Vec<Vec<u8>> = vec![
        b"{\"run_id\":\"r1\"}".to_vec(),
        vec![0, 255, 10, 13, 0x1e],
        vec![b'x'; 256 << 10],
    ];
    for c in &changes {
        bus.publish(c).await.unwrap();
    }
    let start = Instant::now();
    for heard in [&a, &b] {
        loop {
            let got: Vec<Vec<u8>> = heard
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.as_slice() != b"probe")
                .cloned()
                .collect();
            if got.len() >= changes.len() {
                assert_eq!(got, changes, "each change whole, in order, once");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "heard {} of 3",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[macro_export]
macro_rules! change_bus_contract {
    ($make:expr) => {
        mod change_bus_contract {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_listener_hears_each_change_whole_and_in_order() {
                let bus: std::sync::Arc<dyn weft_core::ports::ChangeBus> =
                    std::sync::Arc::new($make.await);
                $crate::change_bus::every_listener_hears_each_change_whole_and_in_order(bus).await;
            }
        }
    };
}
