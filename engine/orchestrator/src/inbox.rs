//! A run's inbox: the reports routed to its driver. A queue behind a lock
//! and a notification, not a channel: a channel's first block holds room
//! for 32 reports, a kilobyte for each of a thousand runs that wait with
//! nothing to receive.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use weft_core::ports::ReportDelivery;

type Delivery = Box<dyn ReportDelivery>;

#[derive(Default)]
struct Shared {
    queue: Mutex<Inner>,
    ready: Notify,
}

#[derive(Default)]
struct Inner {
    reports: VecDeque<Delivery>,
    /// The driver has gone: nothing is taken in any more.
    closed: bool,
}

/// The router's end.
#[derive(Clone)]
pub(crate) struct InboxSender(Arc<Shared>);

/// The driver's end; dropping it closes the inbox.
pub(crate) struct Inbox(Arc<Shared>);

pub(crate) fn inbox() -> (InboxSender, Inbox) {
    let shared = Arc::new(Shared::default());
    (InboxSender(shared.clone()), Inbox(shared))
}

impl InboxSender {
    /// Hands `delivery` to the driver; gives it back if the driver is gone.
    pub fn send(&self, delivery: Delivery) -> Result<(), Delivery> {
        let mut q = self.0.queue.lock().expect("inbox lock");
        if q.closed {
            return Err(delivery);
        }
        q.reports.push_back(delivery);
        drop(q);
        self.0.ready.notify_one();
        Ok(())
    }
}

impl Inbox {
    /// The next report, waiting for one.
    pub async fn recv(&self) -> Delivery {
        loop {
            let ready = self.0.ready.notified();
            if let Some(d) = self.try_recv() {
                return d;
            }
            ready.await;
        }
    }

    /// The next report, if one is there now.
    pub fn try_recv(&self) -> Option<Delivery> {
        self.0.queue.lock().expect("inbox lock").reports.pop_front()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut q = self.0.queue.lock().expect("inbox lock");
        q.closed = true;
        // What was sent and not taken goes back (dropped deliveries return
        // to the queue), as a dropped channel's would.
        q.reports.clear();
    }
}
