//! One producer, many consumers, the producer never waits.
//!
//! [`Fanout`] is the distribution primitive under every stream and every shared
//! output muxer: items go into a bounded broadcast ring, and the items since the
//! last group start (a video keyframe, in practice) are kept so a new consumer
//! starts on a keyframe at once. A consumer that falls behind the ring skips to
//! the next group start; one that keeps falling behind is cut off.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError as BroadcastRecvError, TryRecvError};

/// What a fan-out needs to know of its items.
pub trait FanoutItem: Clone + Send + Sync + 'static {
    /// Bytes held by the item, for the GOP cache bound.
    fn byte_len(&self) -> usize;
}

impl<T: FanoutItem> FanoutItem for std::sync::Arc<T>
where
    T: Send + Sync,
{
    fn byte_len(&self) -> usize {
        T::byte_len(self)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FanoutConfig {
    /// Items a consumer may fall behind before it lags (the ring size).
    pub channel_capacity: usize,
    /// Largest group kept for new consumers, in items.
    pub gop_max_items: usize,
    /// Largest group kept for new consumers, in bytes.
    pub gop_max_bytes: usize,
    /// Lag events tolerated before a consumer is cut off; the count resets once
    /// the consumer reads a whole ring's worth of items without lagging.
    pub max_lag_events: u32,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 512,
            gop_max_items: 1024,
            gop_max_bytes: 16 * 1024 * 1024,
            max_lag_events: 3,
        }
    }
}

#[derive(Clone, Debug)]
struct Entry<T> {
    item: T,
    group_start: bool,
}

struct Inner<T> {
    tx: Option<broadcast::Sender<Entry<T>>>,
    /// Items since the last group start, or empty while no complete-enough
    /// group is known (none seen yet, or the group outgrew its bounds).
    group: Vec<Entry<T>>,
    group_bytes: usize,
    group_cacheable: bool,
}

pub struct Fanout<T> {
    inner: Mutex<Inner<T>>,
    config: FanoutConfig,
}

/// Why a consumer stopped receiving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FanoutError {
    #[error("the stream has ended")]
    Closed,
    #[error("consumer too slow: fell behind {lag_events} times, {skipped} items skipped")]
    TooSlow { lag_events: u32, skipped: u64 },
}

impl<T: FanoutItem> Fanout<T> {
    pub fn new(config: FanoutConfig) -> Self {
        let (tx, _) = broadcast::channel(config.channel_capacity.max(1));
        Self {
            inner: Mutex::new(Inner {
                tx: Some(tx),
                group: Vec::new(),
                group_bytes: 0,
                group_cacheable: false,
            }),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A panic while holding this lock cannot leave the state inconsistent
        // (every update is a single assignment or push), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `item` to every consumer. Never blocks on a consumer.
    pub fn publish(&self, item: T, group_start: bool) {
        let mut inner = self.lock();
        let Some(tx) = inner.tx.clone() else {
            return;
        };
        if group_start {
            inner.group.clear();
            inner.group_bytes = 0;
            inner.group_cacheable = true;
        }
        if inner.group_cacheable {
            let len = item.byte_len();
            if inner.group.len() >= self.config.gop_max_items
                || inner.group_bytes + len > self.config.gop_max_bytes
            {
                // Too long a group to keep: new consumers wait for the next one.
                inner.group.clear();
                inner.group_bytes = 0;
                inner.group_cacheable = false;
            } else {
                inner.group_bytes += len;
                inner.group.push(Entry {
                    item: item.clone(),
                    group_start,
                });
            }
        }
        // An error only means nobody is listening right now.
        let _ = tx.send(Entry { item, group_start });
    }

    /// A new consumer: it first gets the cached group (starting at a group
    /// start), then live items, with no gap and no duplicate in between.
    pub fn subscribe(&self) -> FanoutReceiver<T> {
        let inner = self.lock();
        let backlog: VecDeque<Entry<T>> = inner.group.iter().cloned().collect();
        FanoutReceiver {
            need_sync: backlog.is_empty(),
            backlog,
            rx: inner.tx.as_ref().map(broadcast::Sender::subscribe),
            capacity: self.config.channel_capacity as u64,
            max_lag_events: self.config.max_lag_events,
            lag_events: 0,
            since_lag: 0,
            skipped: 0,
            last_group_start: false,
        }
    }

    /// Forgets the cached group (the source restarted; old parameter sets may
    /// not apply to what comes next).
    pub fn reset_group(&self) {
        let mut inner = self.lock();
        inner.group.clear();
        inner.group_bytes = 0;
        inner.group_cacheable = false;
    }

    /// Ends the fan-out: consumers get [`FanoutError::Closed`] after what they
    /// already have.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.tx = None;
        inner.group.clear();
        inner.group_bytes = 0;
    }

    pub fn is_closed(&self) -> bool {
        self.lock().tx.is_none()
    }

    /// Live consumers.
    pub fn receiver_count(&self) -> usize {
        self.lock()
            .tx
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Items and bytes in the group cache.
    pub fn cached(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.group.len(), inner.group_bytes)
    }
}

pub struct FanoutReceiver<T> {
    backlog: VecDeque<Entry<T>>,
    rx: Option<broadcast::Receiver<Entry<T>>>,
    need_sync: bool,
    capacity: u64,
    max_lag_events: u32,
    lag_events: u32,
    since_lag: u64,
    skipped: u64,
    last_group_start: bool,
}

enum Step<T> {
    Deliver(T),
    Skip,
    Fail(FanoutError),
}

impl<T: FanoutItem> FanoutReceiver<T> {
    /// Items this consumer skipped because it fell behind or joined mid-group.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Whether the item last returned started a group (a consumer may begin
    /// there).
    pub fn last_was_group_start(&self) -> bool {
        self.last_group_start
    }

    /// The next cached item; the cache copy's memory is released once it has
    /// been read, so a caught-up consumer costs only its ring cursor.
    fn pop_backlog(&mut self) -> Option<Entry<T>> {
        let e = self.backlog.pop_front();
        if e.is_some() && self.backlog.is_empty() {
            self.backlog = VecDeque::new();
        }
        e
    }

    fn on_entry(&mut self, entry: Entry<T>) -> Step<T> {
        if self.need_sync {
            if !entry.group_start {
                self.skipped += 1;
                return Step::Skip;
            }
            self.need_sync = false;
        }
        self.since_lag += 1;
        if self.since_lag >= self.capacity {
            self.lag_events = 0;
        }
        self.last_group_start = entry.group_start;
        Step::Deliver(entry.item)
    }

    fn on_lag(&mut self, missed: u64) -> Step<T> {
        self.skipped += missed;
        self.lag_events += 1;
        self.since_lag = 0;
        self.need_sync = true;
        if self.lag_events > self.max_lag_events {
            Step::Fail(FanoutError::TooSlow {
                lag_events: self.lag_events,
                skipped: self.skipped,
            })
        } else {
            Step::Skip
        }
    }

    /// The next item, waiting for it.
    pub async fn recv(&mut self) -> Result<T, FanoutError> {
        if let Some(e) = self.pop_backlog() {
            self.last_group_start = e.group_start;
            return Ok(e.item);
        }
        loop {
            let rx = self.rx.as_mut().ok_or(FanoutError::Closed)?;
            let step = match rx.recv().await {
                Ok(entry) => self.on_entry(entry),
                Err(BroadcastRecvError::Lagged(n)) => self.on_lag(n),
                Err(BroadcastRecvError::Closed) => Step::Fail(FanoutError::Closed),
            };
            match step {
                Step::Deliver(item) => return Ok(item),
                Step::Skip => continue,
                Step::Fail(e) => return Err(e),
            }
        }
    }

    /// The next item if one is ready.
    pub fn try_recv(&mut self) -> Result<Option<T>, FanoutError> {
        if let Some(e) = self.pop_backlog() {
            self.last_group_start = e.group_start;
            return Ok(Some(e.item));
        }
        loop {
            let rx = self.rx.as_mut().ok_or(FanoutError::Closed)?;
            let step = match rx.try_recv() {
                Ok(entry) => self.on_entry(entry),
                Err(TryRecvError::Lagged(n)) => self.on_lag(n),
                Err(TryRecvError::Empty) => return Ok(None),
                Err(TryRecvError::Closed) => Step::Fail(FanoutError::Closed),
            };
            match step {
                Step::Deliver(item) => return Ok(Some(item)),
                Step::Skip => continue,
                Step::Fail(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Item(u32, usize);
    impl FanoutItem for Item {
        fn byte_len(&self) -> usize {
            self.1
        }
    }

    fn config(cap: usize) -> FanoutConfig {
        FanoutConfig {
            channel_capacity: cap,
            gop_max_items: 100,
            gop_max_bytes: 10_000,
            max_lag_events: 2,
        }
    }

    fn drain(rx: &mut FanoutReceiver<Item>) -> Result<Vec<u32>, FanoutError> {
        let mut out = Vec::new();
        while let Some(i) = rx.try_recv()? {
            out.push(i.0);
        }
        Ok(out)
    }

    #[test]
    fn new_consumer_starts_at_last_group() {
        let f = Fanout::new(config(16));
        for i in 0..10 {
            f.publish(Item(i, 1), i % 4 == 0);
        }
        let mut rx = f.subscribe();
        f.publish(Item(10, 1), false);
        assert_eq!(drain(&mut rx).unwrap(), vec![8, 9, 10]);
    }

    #[test]
    fn consumer_before_any_group_waits_for_a_group_start() {
        let f = Fanout::new(config(16));
        let mut rx = f.subscribe();
        f.publish(Item(0, 1), false);
        f.publish(Item(1, 1), true);
        f.publish(Item(2, 1), false);
        assert_eq!(drain(&mut rx).unwrap(), vec![1, 2]);
        assert_eq!(rx.skipped(), 1);
    }

    #[test]
    fn oversized_group_is_not_cached() {
        let f = Fanout::new(config(16));
        f.publish(Item(0, 6000), true);
        f.publish(Item(1, 6000), false);
        assert_eq!(f.cached(), (0, 0));
        let mut rx = f.subscribe();
        f.publish(Item(2, 1), false);
        f.publish(Item(3, 1), true);
        assert_eq!(drain(&mut rx).unwrap(), vec![3]);
    }

    #[test]
    fn lagging_consumer_skips_to_next_group_start() {
        let f = Fanout::new(config(4));
        let mut rx = f.subscribe();
        f.publish(Item(0, 1), true);
        for i in 1..10 {
            f.publish(Item(i, 1), false);
        }
        f.publish(Item(10, 1), true);
        f.publish(Item(11, 1), false);
        // The ring holds 4 items: the consumer lags, then resumes at 10.
        assert_eq!(drain(&mut rx).unwrap(), vec![10, 11]);
        assert!(rx.skipped() >= 8);
    }

    #[test]
    fn consumer_that_keeps_lagging_is_cut_off() {
        let f = Fanout::new(config(2));
        let mut rx = f.subscribe();
        let mut result: Result<Vec<u32>, FanoutError> = Ok(vec![]);
        for round in 0..5 {
            for i in 0..6 {
                f.publish(Item(round * 10 + i, 1), i == 0);
            }
            // Read only one item per round: always behind.
            result = rx.try_recv().map(|_| vec![]);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(FanoutError::TooSlow { .. })));
    }

    #[test]
    fn close_ends_consumers() {
        let f = Fanout::new(config(8));
        let mut rx = f.subscribe();
        f.publish(Item(0, 1), true);
        f.close();
        assert_eq!(rx.try_recv().unwrap(), Some(Item(0, 1)));
        assert_eq!(rx.try_recv(), Err(FanoutError::Closed));
        assert!(f.is_closed());
    }

    #[tokio::test]
    async fn async_recv_delivers_in_order() {
        let f = std::sync::Arc::new(Fanout::new(config(64)));
        let mut rx = f.subscribe();
        let p = f.clone();
        let h = tokio::spawn(async move {
            for i in 0..50 {
                p.publish(Item(i, 1), i % 10 == 0);
                tokio::task::yield_now().await;
            }
            p.close();
        });
        let mut got = Vec::new();
        while let Ok(i) = rx.recv().await {
            got.push(i.0);
        }
        h.await.unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }

    proptest! {
        /// Whatever the publish pattern and read schedule, a consumer sees items in
        /// publish order, every run it sees starts at a group start after a gap,
        /// and nothing is duplicated.
        #[test]
        fn delivery_is_ordered_and_resyncs_on_group_start(
            starts in proptest::collection::vec(any::<bool>(), 1..200),
            reads in proptest::collection::vec(0usize..8, 1..200),
        ) {
            let f = Fanout::new(FanoutConfig { channel_capacity: 8, gop_max_items: 16, gop_max_bytes: 1 << 20, max_lag_events: u32::MAX });
            let mut rx = f.subscribe();
            let mut got: Vec<u32> = Vec::new();
            let mut reads = reads.into_iter().cycle();
            for (i, &s) in starts.iter().enumerate() {
                f.publish(Item(i as u32, 1), s);
                for _ in 0..reads.next().unwrap_or(1) {
                    match rx.try_recv() {
                        Ok(Some(item)) => got.push(item.0),
                        Ok(None) => break,
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            }
            while let Ok(Some(item)) = rx.try_recv() { got.push(item.0); }
            for w in got.windows(2) {
                prop_assert!(w[0] < w[1]);
                if w[1] != w[0] + 1 {
                    prop_assert!(starts[w[1] as usize], "resumed at {} which is not a group start", w[1]);
                }
            }
            if let Some(&first) = got.first() {
                prop_assert!(starts[first as usize]);
            }
        }
    }
}
