//! Two AMQP clients on the same exchange of messages as a weft step's:
//! a confirmed persistent publish to a job queue, its delivery and ack on
//! a second connection, a confirmed publish to a report queue from there,
//! its delivery and ack back on the first (2,000 round trips, one at a
//! time, RabbitMQ on 127.0.0.1:5672). lapin (weft's client before amqprs) runs each
//! connection's I/O on a thread of its own; amqprs runs it on the tokio
//! runtime. Prints the time per round trip; run under `/usr/bin/time`
//! for the CPU. `CT=1` uses a single-threaded runtime.
//!
//!     cargo run --release -- lapin
//!     cargo run --release -- amqprs

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use futures_util::StreamExt;
use tokio::sync::oneshot;

const N: usize = 2000;

async fn lapin_side() -> f64 {
    use lapin::{options::*, types::FieldTable, BasicProperties, Connection, ConnectionProperties};
    let uri = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let ca = Connection::connect(uri, ConnectionProperties::default()).await.unwrap();
    let cb = Connection::connect(uri, ConnectionProperties::default()).await.unwrap();
    let cha = ca.create_channel().await.unwrap();
    let chb = cb.create_channel().await.unwrap();
    for ch in [&cha, &chb] {
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    }
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    cha.queue_declare("bench.l.job".into(), durable, FieldTable::default()).await.unwrap();
    cha.queue_declare("bench.l.rep".into(), durable, FieldTable::default()).await.unwrap();
    cha.queue_purge("bench.l.job".into(), QueuePurgeOptions::default()).await.unwrap();
    cha.queue_purge("bench.l.rep".into(), QueuePurgeOptions::default()).await.unwrap();
    let mut job_consumer = chb.basic_consume("bench.l.job".into(), "b".into(), BasicConsumeOptions::default(), FieldTable::default()).await.unwrap();
    let mut rep_consumer = cha.basic_consume("bench.l.rep".into(), "a".into(), BasicConsumeOptions::default(), FieldTable::default()).await.unwrap();
    let chb2 = chb.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = job_consumer.next().await {
            chb2.basic_publish("".into(), "bench.l.rep".into(), BasicPublishOptions::default(), &d.data, BasicProperties::default().with_delivery_mode(2)).await.unwrap().await.unwrap();
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    });
    let payload = vec![b'x'; 600];
    let start = Instant::now();
    for _ in 0..N {
        cha.basic_publish("".into(), "bench.l.job".into(), BasicPublishOptions::default(), &payload, BasicProperties::default().with_delivery_mode(2)).await.unwrap().await.unwrap();
        let d = rep_consumer.next().await.unwrap().unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    start.elapsed().as_secs_f64() * 1000.0 / N as f64
}

type Waiters = Arc<Mutex<(u64, HashMap<u64, oneshot::Sender<bool>>)>>;
struct Cb(Waiters);
#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for Cb {
    async fn close(&mut self, _c: &amqprs::channel::Channel, _x: amqprs::CloseChannel) -> Result<(), amqprs::error::Error> { Ok(()) }
    async fn cancel(&mut self, _c: &amqprs::channel::Channel, _x: amqprs::Cancel) -> Result<(), amqprs::error::Error> { Ok(()) }
    async fn flow(&mut self, _c: &amqprs::channel::Channel, a: bool) -> Result<bool, amqprs::error::Error> { Ok(a) }
    async fn publish_ack(&mut self, _c: &amqprs::channel::Channel, ack: amqprs::Ack) {
        let mut w = self.0.lock().unwrap();
        let tag = ack.delivery_tag();
        let keys: Vec<u64> = if ack.mutiple() { w.1.keys().copied().filter(|k| *k <= tag).collect() } else { vec![tag] };
        for k in keys { if let Some(s) = w.1.remove(&k) { let _ = s.send(true); } }
    }
    async fn publish_nack(&mut self, _c: &amqprs::channel::Channel, _n: amqprs::Nack) {}
    async fn publish_return(&mut self, _c: &amqprs::channel::Channel, _r: amqprs::Return, _b: amqprs::BasicProperties, _d: Vec<u8>) {}
}

async fn confirmed_publish(ch: &amqprs::channel::Channel, w: &Waiters, q: &str, data: Vec<u8>) {
    use amqprs::channel::BasicPublishArguments;
    let rx = {
        let mut g = w.lock().unwrap();
        g.0 += 1;
        let (tx, rx) = oneshot::channel();
        let tag = g.0;
        g.1.insert(tag, tx);
        rx
    };
    let mut props = amqprs::BasicProperties::default();
    props.with_delivery_mode(2);
    ch.basic_publish(props, data, BasicPublishArguments::new("", q)).await.unwrap();
    assert!(rx.await.unwrap());
}

async fn amqprs_side() -> f64 {
    use amqprs::channel::*;
    use amqprs::connection::{Connection, OpenConnectionArguments};
    let args = OpenConnectionArguments::new("127.0.0.1", 5672, "guest", "guest");
    let ca = Connection::open(&args).await.unwrap();
    let cb = Connection::open(&args).await.unwrap();
    let cha = ca.open_channel(None).await.unwrap();
    let chb = cb.open_channel(None).await.unwrap();
    let wa: Waiters = Default::default();
    let wb: Waiters = Default::default();
    cha.register_callback(Cb(wa.clone())).await.unwrap();
    chb.register_callback(Cb(wb.clone())).await.unwrap();
    for ch in [&cha, &chb] {
        ch.confirm_select(ConfirmSelectArguments::default()).await.unwrap();
        ch.basic_qos(BasicQosArguments::new(0, 2, false)).await.unwrap();
    }
    for q in ["bench.r.job", "bench.r.rep"] {
        cha.queue_declare(QueueDeclareArguments::durable_client_named(q)).await.unwrap();
        cha.queue_purge(QueuePurgeArguments::new(q)).await.unwrap();
    }
    let (_, mut job_rx) = chb.basic_consume_rx(BasicConsumeArguments::new("bench.r.job", "b").manual_ack(true).finish()).await.unwrap();
    let (_, mut rep_rx) = cha.basic_consume_rx(BasicConsumeArguments::new("bench.r.rep", "a").manual_ack(true).finish()).await.unwrap();
    let chb2 = chb.clone();
    tokio::spawn(async move {
        while let Some(m) = job_rx.recv().await {
            let tag = m.deliver.unwrap().delivery_tag();
            confirmed_publish(&chb2, &wb, "bench.r.rep", m.content.unwrap()).await;
            chb2.basic_ack(BasicAckArguments::new(tag, false)).await.unwrap();
        }
    });
    let start = Instant::now();
    for _ in 0..N {
        confirmed_publish(&cha, &wa, "bench.r.job", vec![b'x'; 600]).await;
        let m = rep_rx.recv().await.unwrap();
        cha.basic_ack(BasicAckArguments::new(m.deliver.unwrap().delivery_tag(), false)).await.unwrap();
    }
    let r = start.elapsed().as_secs_f64() * 1000.0 / N as f64;
    std::mem::forget((ca, cb));
    r
}

fn main() {
    let which = std::env::args().nth(1).unwrap();
    let rt = if std::env::var("CT").is_ok() { tokio::runtime::Builder::new_current_thread() } else { let mut b = tokio::runtime::Builder::new_multi_thread(); b.worker_threads(2); b };
    let rt = { let mut rt = rt; rt.enable_all().build().unwrap() };
    let ms = rt.block_on(async { if which == "lapin" { lapin_side().await } else { amqprs_side().await } });
    println!("{which}: {ms:.3} ms per round trip (two confirmed publishes, two deliveries, two acks)");
    std::process::exit(0);
}
