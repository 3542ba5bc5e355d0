//! `weft run --logs`: each step's output as it is written, every line
//! prefixed with the step it came from, in order with the progress lines.
//!
//! The progress reporter cannot wait on the store, so everything it would
//! print goes through one printing task instead: when it says a step ended,
//! that task first prints the rest of the step's log, and only then the line
//! that says so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use indicatif::MultiProgress;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weft_core::ports::{AttemptId, RunStore};

/// How often the logs of running steps are read.
const READ_EVERY: Duration = Duration::from_millis(200);

/// What the reporter hands the printing task, in the order it happened.
pub enum Message {
    /// A progress line.
    Line(String),
    /// An attempt started: follow its log.
    Started(AttemptId),
    /// An attempt ended: print the rest of its log now.
    Finished(AttemptId),
    /// The run ended: print what is left of every log and stop.
    Done,
}

/// Where lines go: above the bars on a terminal, else standard output.
#[derive(Clone)]
pub enum Printer {
    Bars(MultiProgress),
    Plain,
}

impl Printer {
    fn print(&self, text: &str) {
        match self {
            Printer::Bars(multi) => {
                let _ = multi.println(text);
            }
            Printer::Plain => crate::progress::say(text),
        }
    }
}

/// Starts the printing task; send it `Done` and await it before printing
/// anything after the run.
pub fn spawn(
    store: Arc<dyn RunStore>,
    printer: Printer,
    width: usize,
) -> (mpsc::UnboundedSender<Message>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let tail = Tail {
            store,
            printer,
            width,
        };
        let mut following: HashMap<AttemptId, Follow> = HashMap::new();
        let mut tick = tokio::time::interval(READ_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Message::Line(text)) => tail.printer.print(&text),
                    Some(Message::Started(key)) => {
                        following.insert(key, Follow::default());
                    }
                    Some(Message::Finished(key)) => {
                        if let Some(mut follow) = following.remove(&key) {
                            tail.read(&key, &mut follow, true).await;
                        }
                    }
                    Some(Message::Done) | None => {
                        let mut left: Vec<_> = following.into_iter().collect();
                        left.sort_by(|a, b| a.0.task.cmp(&b.0.task));
                        for (key, mut follow) in left {
                            tail.read(&key, &mut follow, true).await;
                        }
                        return;
                    }
                },
                _ = tick.tick() => {
                    for (key, follow) in following.iter_mut() {
                        tail.read(key, follow, false).await;
                    }
                }
            }
        }
    });
    (tx, task)
}

struct Tail {
    store: Arc<dyn RunStore>,
    printer: Printer,
    width: usize,
}

/// How far an attempt's log has been printed, and the start of a line not
/// yet ended.
#[derive(Default)]
struct Follow {
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Prints the whole lines written since the last read; with `last`, the
    /// unfinished one too.
    async fn read(&self, key: &AttemptId, follow: &mut Follow, last: bool) {
        match self
            .store
            .read_log_from(key, follow.offset, weft_core::ports::LOG_PAGE_BYTES)
            .await
        {
            Ok(slice) => {
                follow.offset = slice.start + slice.bytes.len() as u64;
                follow.partial.extend_from_slice(&slice.bytes);
            }
            // A log that cannot be read must not stop the run; the store's
            // own error is what `weft logs` will say.
            Err(e) if last => self.line(key, &format!("[weft: log unreadable: {e}]")),
            Err(_) => {}
        }
        let ended = if last {
            follow.partial.len()
        } else {
            follow
                .partial
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
        };
        let whole: Vec<u8> = follow.partial.drain(..ended).collect();
        for line in String::from_utf8_lossy(&whole).lines() {
            self.line(key, line.trim_end_matches('\r'));
        }
    }

    fn line(&self, key: &AttemptId, text: &str) {
        // A stderr line's mark is for viewers that can show it apart.
        let (_, text) = weft_core::log_format::split_mark(text);
        let width = self.width;
        let task = key.task.to_string();
        self.printer.print(&format!("{task:>width$} | {text}"));
    }
}
