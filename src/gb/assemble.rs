//! Multi-message answers (Catalog, RecordInfo; gb28181.md §3 "Multi-packet"):
//! a device answers one query with several MESSAGEs that share the query's SN,
//! each with `SumNum` (the total) and a part of the list. Sans-IO: collect per
//! (device, SN), de-duplicate by item id (later copies win, first position
//! kept), finish when the unique count reaches `SumNum`, or when no part has
//! arrived for the idle timeout (some NVRs report a wrong SumNum).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Items that have an identity within one answer.
pub trait Keyed {
    fn key(&self) -> String;
}

impl Keyed for super::manscdp::CatalogItem {
    fn key(&self) -> String {
        self.device_id.clone()
    }
}

impl Keyed for super::manscdp::RecordItem {
    /// A recording is identified by its channel, span and file.
    fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.device_id,
            self.start_time.as_deref().unwrap_or(""),
            self.end_time.as_deref().unwrap_or(""),
            self.file_path.as_deref().unwrap_or("")
        )
    }
}

#[derive(Clone, Copy, Debug)]
pub struct AssemblerLimits {
    pub idle_timeout: Duration,
    /// Unique items kept per answer; more are dropped with a warning.
    pub max_items: usize,
    /// Answers in progress at once; the oldest is finished early beyond this.
    pub max_sessions: usize,
}

impl Default for AssemblerLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            max_items: 100_000,
            max_sessions: 1_000,
        }
    }
}

/// A finished answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Assembled<T> {
    pub device_id: String,
    pub sn: u64,
    pub items: Vec<T>,
    pub sum_num: Option<u32>,
    /// Every announced item arrived. False when cut off by the idle timeout or
    /// a limit: the caller must not treat missing items as deleted.
    pub complete: bool,
    pub messages: u32,
    /// Items dropped because of [`AssemblerLimits::max_items`].
    pub dropped: usize,
}

struct Session<T> {
    started: Instant,
    last: Instant,
    sum_num: Option<u32>,
    items: Vec<T>,
    index: HashMap<String, usize>,
    messages: u32,
    dropped: usize,
}

pub struct Assembler<T> {
    limits: AssemblerLimits,
    sessions: HashMap<(String, u64), Session<T>>,
}

impl<T: Keyed> Assembler<T> {
    pub fn new(limits: AssemblerLimits) -> Self {
        Self {
            limits,
            sessions: HashMap::new(),
        }
    }

    /// Whether parts of (device, SN) have arrived and it is not finished.
    pub fn has_session(&self, device_id: &str, sn: u64) -> bool {
        self.sessions.contains_key(&(device_id.to_owned(), sn))
    }

    pub fn in_progress(&self) -> usize {
        self.sessions.len()
    }

    /// Adds one message's part. Returns the answer when it is complete.
    pub fn push(
        &mut self,
        device_id: &str,
        sn: u64,
        sum_num: Option<u32>,
        items: Vec<T>,
        now: Instant,
    ) -> Vec<Assembled<T>> {
        let mut finished = Vec::new();
        let key = (device_id.to_owned(), sn);
        if !self.sessions.contains_key(&key) && self.sessions.len() >= self.limits.max_sessions {
            // Make room: finish the longest-running answer as incomplete.
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(k, _)| k.clone())
                && let Some(s) = self.sessions.remove(&oldest)
            {
                finished.push(Self::finish(oldest, s, false));
            }
        }
        let max_items = self.limits.max_items;
        let s = self.sessions.entry(key.clone()).or_insert_with(|| Session {
            started: now,
            last: now,
            sum_num: None,
            items: Vec::new(),
            index: HashMap::new(),
            messages: 0,
            dropped: 0,
        });
        s.last = now;
        s.messages += 1;
        if sum_num.is_some() {
            s.sum_num = sum_num;
        }
        for item in items {
            let k = item.key();
            match s.index.get(&k) {
                Some(&i) => s.items[i] = item,
                None if s.items.len() < max_items => {
                    s.index.insert(k, s.items.len());
                    s.items.push(item);
                }
                None => s.dropped += 1,
            }
        }
        let done = match s.sum_num {
            Some(n) => s.items.len() >= n as usize,
            // No SumNum at all: a one-message answer.
            None => true,
        };
        if done && let Some(s) = self.sessions.remove(&key) {
            finished.push(Self::finish(key, s, true));
        }
        finished
    }

    fn finish(key: (String, u64), s: Session<T>, complete: bool) -> Assembled<T> {
        Assembled {
            device_id: key.0,
            sn: key.1,
            complete: complete && s.dropped == 0,
            items: s.items,
            sum_num: s.sum_num,
            messages: s.messages,
            dropped: s.dropped,
        }
    }

    /// When [`Assembler::poll_timeouts`] next has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .map(|s| s.last + self.limits.idle_timeout)
            .min()
    }

    /// Answers idle for the timeout, finished as incomplete.
    pub fn poll_timeouts(&mut self, now: Instant) -> Vec<Assembled<T>> {
        let idle = self.limits.idle_timeout;
        let expired: Vec<(String, u64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.duration_since(s.last) >= idle)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| {
                let s = self.sessions.remove(&k)?;
                Some(Self::finish(k, s, false))
            })
            .collect()
    }

    /// Forgets a device's answers in progress (device deleted/unregistered).
    pub fn forget_device(&mut self, device_id: &str) {
        self.sessions.retain(|(d, _), _| d != device_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gb::manscdp::CatalogItem;

    fn item(id: &str, name: &str) -> CatalogItem {
        CatalogItem {
            device_id: id.into(),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    #[test]
    fn parts_are_joined_and_deduplicated_until_sum_num() {
        let mut a = Assembler::new(AssemblerLimits::default());
        let t = Instant::now();
        assert!(
            a.push("d", 7, Some(3), vec![item("a", "1"), item("b", "1")], t)
                .is_empty()
        );
        // Another answer for the same device interleaves.
        assert!(a.push("d", 8, Some(2), vec![item("x", "1")], t).is_empty());
        // A duplicate of b (updated) does not count twice.
        assert!(a.push("d", 7, Some(3), vec![item("b", "2")], t).is_empty());
        let done = a.push("d", 7, Some(3), vec![item("c", "1")], t);
        assert_eq!(done.len(), 1);
        let d = &done[0];
        assert!(d.complete);
        assert_eq!(d.messages, 3);
        let ids: Vec<_> = d.items.iter().map(|i| i.device_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(d.items[1].name.as_deref(), Some("2"), "later copy wins");
        assert_eq!(a.in_progress(), 1);
    }

    #[test]
    fn empty_answer_and_missing_sum_num_finish_at_once() {
        let mut a: Assembler<CatalogItem> = Assembler::new(AssemblerLimits::default());
        let t = Instant::now();
        let done = a.push("d", 1, Some(0), vec![], t);
        assert!(done[0].complete && done[0].items.is_empty());
        let done = a.push("d", 2, None, vec![item("a", "")], t);
        assert_eq!(done[0].items.len(), 1);
    }

    #[test]
    fn idle_answers_time_out_incomplete() {
        let mut a = Assembler::new(AssemblerLimits {
            idle_timeout: Duration::from_secs(10),
            ..AssemblerLimits::default()
        });
        let t = Instant::now();
        a.push("d", 1, Some(5), vec![item("a", "")], t);
        a.push(
            "d",
            1,
            Some(5),
            vec![item("b", "")],
            t + Duration::from_secs(8),
        );
        assert_eq!(a.next_timeout(), Some(t + Duration::from_secs(18)));
        assert!(a.poll_timeouts(t + Duration::from_secs(17)).is_empty());
        let done = a.poll_timeouts(t + Duration::from_secs(18));
        assert_eq!(done.len(), 1);
        assert!(!done[0].complete);
        assert_eq!(done[0].items.len(), 2);
    }

    #[test]
    fn limits_bound_memory() {
        let mut a = Assembler::new(AssemblerLimits {
            max_items: 2,
            max_sessions: 2,
            ..AssemblerLimits::default()
        });
        let t = Instant::now();
        let done = a.push(
            "d",
            1,
            Some(3),
            vec![item("a", ""), item("b", ""), item("c", "")],
            t,
        );
        assert!(done.is_empty(), "2 unique of 3 announced: still waiting");
        a.push(
            "d",
            2,
            Some(9),
            vec![item("a", "")],
            t + Duration::from_secs(1),
        );
        let done = a.push(
            "d",
            3,
            Some(9),
            vec![item("a", "")],
            t + Duration::from_secs(2),
        );
        assert_eq!(done.len(), 1, "oldest finished early to make room");
        assert_eq!(done[0].sn, 1);
        assert!(!done[0].complete);
        assert_eq!(done[0].dropped, 1);
    }
}
