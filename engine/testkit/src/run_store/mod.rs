//! The run store's contracts, one per port ([`RunIndex`], [`EventLog`],
//! [`StepLogs`], [`Leases`], [`AttemptClaims`](weft_core::ports::AttemptClaims)), each a macro that an
//! adapter's tests invoke; `run_store_contract!` runs them all.

use weft_core::ports::{
    AttemptId, Fence, Leases, LogSlice, RunIndex, RunRecord, RunStore, StepLogs,
};
use weft_core::run::{Event, RunStatus, TaskId};
use weft_core::Error;

use crate::unique;

mod claims;
mod macros;

pub use claims::*;

fn record(id: &str, created_at: u64) -> RunRecord {
    RunRecord {
        submitted_by: Some("tester".into()),
        ..crate::run_record(id, created_at)
    }
}

pub async fn created_run_reads_back_and_lists_newest_first(s: &dyn RunIndex) {
    let (a, b) = (unique("run"), unique("run"));
    // Far-future times so other runs in a shared store sort after these.
    s.create_run(&record(&a, u64::MAX - 2000)).await.unwrap();
    s.create_run(&record(&b, u64::MAX - 1000)).await.unwrap();
    assert_eq!(
        s.get_run(&a).await.unwrap(),
        Some(record(&a, u64::MAX - 2000))
    );
    let listed: Vec<String> = s
        .list_runs(2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![b, a]);
    assert_eq!(s.get_run(&unique("missing")).await.unwrap(), None);
}

pub async fn creating_a_run_twice_conflicts(s: &dyn RunIndex) {
    let a = unique("run");
    s.create_run(&record(&a, 1)).await.unwrap();
    assert!(matches!(
        s.create_run(&record(&a, 1)).await,
        Err(Error::Conflict(_))
    ));
}

pub async fn updated_run_keeps_its_new_status(s: &dyn RunStore) {
    let a = unique("run");
    let mut r = record(&a, 1);
    s.create_run(&r).await.unwrap();
    r.status = RunStatus::Failed;
    r.finished_at = Some(9);
    r.summary = Some("a: exit 1".into());
    s.update_run(&r).await.unwrap();
    assert_eq!(s.get_run(&a).await.unwrap(), Some(r));
    assert!(matches!(
        s.update_run(&record(&unique("missing"), 1)).await,
        Err(Error::NotFound(_))
    ));
}

/// The lease of `run` for a fresh owner: what a driver writes with.
async fn fence(s: &dyn RunStore, run: &str) -> Fence {
    s.lease(run, &unique("owner"), now(), 60_000)
        .await
        .unwrap()
        .expect("a free lease")
}

pub async fn events_append_in_order_and_read_back(s: &dyn RunStore) {
    let a = unique("run");
    let e = |at| Event::Started { at };
    let f = fence(s, &a).await;
    s.append_events(&a, &f, 0, &[e(1), e(2)]).await.unwrap();
    s.append_events(&a, &f, 2, &[e(3)]).await.unwrap();
    assert_eq!(s.events(&a).await.unwrap(), vec![e(1), e(2), e(3)]);
    assert!(s.events(&unique("run")).await.unwrap().is_empty());
    // A reader that has seen some gets the record and the rest only.
    assert_eq!(s.run_since(&a, 0).await.unwrap(), None, "no record yet");
    let r = record(&a, 1);
    s.create_run(&r).await.unwrap();
    for (from, rest) in [
        (0, vec![e(1), e(2), e(3)]),
        (2, vec![e(3)]),
        (3, vec![]),
        (99, vec![]),
    ] {
        let read = s.run_since(&a, from).await.unwrap();
        assert_eq!(read, Some((r.clone(), rest)), "from {from}");
    }
    let b = unique("run");
    s.create_run(&record(&b, 1)).await.unwrap();
    assert!(s.run_since(&b, 1).await.unwrap().unwrap().1.is_empty());
}

pub async fn append_at_a_stale_length_conflicts_and_writes_nothing(s: &dyn RunStore) {
    let a = unique("run");
    let e = |at| Event::Started { at };
    let f = fence(s, &a).await;
    s.append_events(&a, &f, 0, &[e(1)]).await.unwrap();
    assert!(
        matches!(
            s.append_events(&a, &f, 0, &[e(2), e(3)]).await,
            Err(Error::LogMoved {
                expected: 0,
                actual: 1,
                ..
            })
        ),
        "the length it found is told"
    );
    assert_eq!(s.events(&a).await.unwrap(), vec![e(1)]);
}

pub async fn an_owner_whose_lease_was_taken_over_cannot_append(s: &dyn RunStore) {
    let run = unique("run");
    let e = |at| Event::Started { at };
    let a = s.lease(&run, "a", now(), 300).await.unwrap().unwrap();
    s.append_events(&run, &a, 0, &[e(1)]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Expired, but nobody took it: a's writes still stand in line.
    s.append_events(&run, &a, 1, &[e(2)]).await.unwrap();
    let b = s.lease(&run, "b", now(), 60_000).await.unwrap().unwrap();
    assert_ne!(a.token, b.token, "a new holder, a new token");
    assert!(
        matches!(
            s.append_events(&run, &a, 2, &[e(3)]).await,
            Err(Error::Fenced(_))
        ),
        "a stale driver is refused even at the right length"
    );
    s.append_events(&run, &b, 2, &[e(4)]).await.unwrap();
    assert_eq!(s.events(&run).await.unwrap(), vec![e(1), e(2), e(4)]);
    assert_eq!(s.lease(&run, "a", now(), 300).await.unwrap(), None);
    assert!(
        matches!(
            s.append_events(&unique("run"), &a, 0, &[e(1)]).await,
            Err(Error::Fenced(_))
        ),
        "no lease, no writes"
    );
}

pub async fn logs_append_per_attempt(s: &dyn StepLogs) {
    let run_id = unique("run");
    let key = |attempt| AttemptId {
        run_id: run_id.clone(),
        task: TaskId::new("a", Some(2)),
        attempt,
    };
    s.append_log(&key(1), 0, b"hello ").await.unwrap();
    s.append_log(&key(1), 6, b"world\n").await.unwrap();
    s.append_log(&key(2), 0, b"second\n").await.unwrap();
    assert_eq!(s.read_log(&key(1)).await.unwrap(), b"hello world\n");
    assert_eq!(s.read_log(&key(2)).await.unwrap(), b"second\n");
    assert!(s.read_log(&key(3)).await.unwrap().is_empty());
    // A follower reads from where it stopped, inside a chunk or between two.
    for (offset, rest) in [
        (0, &b"hello world\n"[..]),
        (3, b"lo world\n"),
        (6, b"world\n"),
        (11, b"\n"),
        (12, b""),
    ] {
        let slice = s.read_log_from(&key(1), offset, 1 << 20).await.unwrap();
        assert_eq!(
            (slice.start, &slice.bytes[..]),
            (offset, rest),
            "from {offset}"
        );
        assert_eq!((slice.end(), slice.log_end), (12, 12));
    }
    let past = s.read_log_from(&key(1), 99, 1 << 20).await.unwrap();
    assert_eq!(
        (past.start, past.bytes.len()),
        (12, 0),
        "past the end: at the end"
    );
    assert_eq!(
        s.read_log_from(&key(3), 5, 1 << 20).await.unwrap(),
        LogSlice::default()
    );
}

pub async fn a_log_append_lands_once_and_only_where_the_log_ends(s: &dyn StepLogs) {
    let key = AttemptId {
        run_id: unique("run"),
        task: TaskId::new("a", None),
        attempt: 1,
    };
    s.append_log(&key, 0, b"one\n").await.unwrap();
    // Its writer tries again after a lost reply: found there, not doubled.
    assert!(matches!(
        s.append_log(&key, 0, b"one\n").await,
        Err(Error::LogMoved {
            expected: 0,
            actual: 4,
            ..
        })
    ));
    assert!(
        matches!(
            s.append_log(&key, 9, b"gap").await,
            Err(Error::LogMoved { actual: 4, .. })
        ),
        "no gap is left"
    );
    assert_eq!(s.read_log(&key).await.unwrap(), b"one\n");
}

pub async fn a_big_log_is_stored_in_bounded_chunks_and_read_in_pages(s: &dyn StepLogs) {
    let key = AttemptId {
        run_id: unique("run"),
        task: TaskId::new("big", None),
        attempt: 1,
    };
    // 1 MiB and a bit, in one write, each byte telling its place.
    let big: Vec<u8> = (0..(1u32 << 20) + 1000).map(|i| (i % 251) as u8).collect();
    s.append_log(&key, 0, &big).await.unwrap();
    let mut read = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let page = s.read_log_from(&key, offset, 300_000).await.unwrap();
        assert!(page.bytes.len() <= 300_000, "a page is bounded");
        assert_eq!(page.start, offset);
        assert_eq!(page.log_end, big.len() as u64);
        read.extend_from_slice(&page.bytes);
        pages += 1;
        if !page.more() {
            break;
        }
        offset = page.end();
    }
    assert!(pages >= 4, "read in {pages} pages");
    assert!(read == big, "every byte back, in order");
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub async fn a_lease_is_exclusive_until_it_expires(s: &dyn Leases) {
    let run = unique("run");
    let a = s.lease(&run, "a", now(), 400).await.unwrap().expect("free");
    assert_eq!(
        s.lease(&run, "b", now(), 400).await.unwrap(),
        None,
        "b took a live lease"
    );
    let told = s.holder(&run).await.unwrap();
    assert!(told.is_none() || told.as_deref() == Some("a"), "{told:?}");
    assert_eq!(
        s.lease(&run, "a", now(), 400).await.unwrap(),
        Some(a.clone()),
        "the holder renews, with the same token"
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let b = s.lease(&run, "b", now(), 400).await.unwrap();
    assert!(
        b.as_ref()
            .is_some_and(|b| b.owner == "b" && b.token > a.token),
        "b takes an expired lease, with a newer token: {b:?}"
    );
    assert_eq!(s.lease(&run, "a", now(), 400).await.unwrap(), None);
    if told.is_some() {
        assert_eq!(s.holder(&run).await.unwrap().as_deref(), Some("b"));
    }
}

pub async fn a_released_lease_is_free(s: &dyn Leases) {
    let run = unique("run");
    let a = s.lease(&run, "a", now(), 60_000).await.unwrap().unwrap();
    let not_a = Fence {
        owner: "b".into(),
        token: a.token,
    };
    s.release(&run, &not_a).await.unwrap();
    assert_eq!(
        s.lease(&run, "b", now(), 60_000).await.unwrap(),
        None,
        "only the holder releases"
    );
    s.release(&run, &a).await.unwrap();
    assert!(s.lease(&run, "b", now(), 60_000).await.unwrap().is_some());
}

pub async fn runs_page_by_filter_and_cursor(s: &dyn RunIndex) {
    use weft_core::ports::RunQuery;
    let workflow = unique("wf");
    let base = unique("run");
    let ids: Vec<String> = (0..3).map(|i| format!("{base}-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut r = record(id, u64::MAX - 10_000 + i as u64);
        r.workflow = workflow.clone();
        r.status = if i == 1 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        s.create_run(&r).await.unwrap();
    }
    let page = |status, before, limit| RunQuery {
        status,
        workflow: Some(workflow.clone()),
        before,
        limit,
        id_prefix: None,
    };
    let got = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        got(s.query_runs(&page(None, None, 10)).await.unwrap()),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(
        got(s
            .query_runs(&page(Some(RunStatus::Failed), None, 10))
            .await
            .unwrap()),
        vec![ids[1].clone()]
    );
    let first = s.query_runs(&page(None, None, 2)).await.unwrap();
    let last = first.last().unwrap();
    let next = s
        .query_runs(&page(None, Some((last.created_at, last.id.clone())), 2))
        .await
        .unwrap();
    assert_eq!(got(next), vec![ids[0].clone()]);
    // By a prefix of the id: the one run, however many runs are newer.
    let by_prefix = |prefix: &str, limit| RunQuery {
        id_prefix: Some(prefix.to_string()),
        limit,
        ..RunQuery::default()
    };
    let oldest = &ids[0];
    assert_eq!(
        got(s.query_runs(&by_prefix(oldest, 2)).await.unwrap()),
        vec![oldest.clone()]
    );
    // A prefix shared by all three, at most `limit` of them, newest first.
    assert_eq!(
        got(s.query_runs(&by_prefix(&base, 2)).await.unwrap()),
        vec![ids[2].clone(), ids[1].clone()]
    );
    // Glob characters in a prefix are only characters.
    assert!(s.query_runs(&by_prefix("*", 10)).await.unwrap().is_empty());
}

pub async fn unfinished_runs_are_listed_until_they_end(s: &dyn RunIndex) {
    let (a, b) = (unique("run"), unique("run"));
    let mut ra = record(&a, 1);
    s.create_run(&ra).await.unwrap();
    let mut done = record(&b, 2);
    done.status = RunStatus::Succeeded;
    s.create_run(&done).await.unwrap();
    let unfinished = s.unfinished_runs(usize::MAX).await.unwrap();
    assert!(unfinished.contains(&a), "{unfinished:?}");
    assert!(!unfinished.contains(&b), "{unfinished:?}");
    assert!(s.unfinished_runs(0).await.unwrap().is_empty());
    ra.status = RunStatus::Cancelled;
    s.update_run(&ra).await.unwrap();
    assert!(!s.unfinished_runs(usize::MAX).await.unwrap().contains(&a));
    // A run can be started again (a retry in place): unfinished once more.
    ra.status = RunStatus::Running;
    s.update_run(&ra).await.unwrap();
    assert!(s.unfinished_runs(usize::MAX).await.unwrap().contains(&a));
}

pub async fn a_reader_catches_up_from_where_it_stopped(s: &dyn RunStore) {
    let a = unique("run");
    s.create_run(&record(&a, 1)).await.unwrap();
    let f = fence(s, &a).await;
    let events = [
        Event::Started { at: 1 },
        Event::Started { at: 2 },
        Event::Started { at: 3 },
    ];
    s.append_events(&a, &f, 0, &events).await.unwrap();
    let (r, new) = s.run_since(&a, 1).await.unwrap().expect("the run");
    assert_eq!((r.id.as_str(), new.as_slice()), (a.as_str(), &events[1..]));
    let (_, none) = s.run_since(&a, 9).await.unwrap().expect("the run");
    assert!(none.is_empty());
    assert!(s.run_since(&unique("missing"), 0).await.unwrap().is_none());
}
