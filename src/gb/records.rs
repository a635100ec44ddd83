//! Device recordings: RecordInfo queries (GB/T 28181-2016 A.2.4.5 / A.2.6.7;
//! gb28181.md §3 "RecordInfo"), answered in several MESSAGEs that the
//! assembler joins, and a short cache so a UI paging through a timeline does
//! not ask the device again for every view.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Answer, GbError, Platform, lock};
use crate::gb::assemble::Assembled;
use crate::gb::manscdp::{CmdType, RecordItem};

/// How long a record list is reused.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Record lists kept at once.
const CACHE_ENTRIES: usize = 256;

/// A whole RecordInfo answer.
#[derive(Clone, Debug, Serialize)]
pub struct RecordsAnswer {
    pub sn: u64,
    /// `SumNum` the device announced.
    pub sum_num: Option<u32>,
    /// False when the device stopped sending before `SumNum` items came
    /// (idle timeout): the list is what arrived.
    pub complete: bool,
    pub messages: u32,
    pub items: Vec<RecordItem>,
}

type CacheKey = (String, String, i64, i64, String);

#[derive(Default)]
pub(super) struct RecordCache {
    entries: HashMap<CacheKey, (Instant, Arc<RecordsAnswer>)>,
}

impl RecordCache {
    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Arc<RecordsAnswer>> {
        self.entries
            .retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
        self.entries.get(key).map(|(_, a)| a.clone())
    }

    fn put(&mut self, key: CacheKey, answer: Arc<RecordsAnswer>, now: Instant) {
        if self.entries.len() >= CACHE_ENTRIES
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (now, answer));
    }
}

/// Record types a query may ask for (GB/T 28181-2016 A.2.4.5 `Type`).
pub const RECORD_TYPES: &[&str] = &["all", "time", "alarm", "manual"];

impl Platform {
    /// A channel's recordings between `start` and `end` (Unix seconds),
    /// of `record_type` (one of [`RECORD_TYPES`]).
    pub async fn records(
        &self,
        device_id: &str,
        channel_id: &str,
        start: i64,
        end: i64,
        record_type: &str,
    ) -> Result<Arc<RecordsAnswer>, GbError> {
        if !RECORD_TYPES.contains(&record_type) {
            return Err(GbError::BadRequest(format!(
                "record type must be one of {}",
                RECORD_TYPES.join(", ")
            )));
        }
        if end <= start {
            return Err(GbError::BadRequest("end must be after start".into()));
        }
        let key = (
            device_id.to_owned(),
            channel_id.to_owned(),
            start,
            end,
            record_type.to_owned(),
        );
        if let Some(hit) = lock(&self.inner).record_cache.get(&key, Instant::now()) {
            return Ok(hit);
        }
        let offset = crate::util::local_utc_offset_secs(std::time::SystemTime::now());
        let (from, to) = (
            crate::util::gb_time(start, offset),
            crate::util::gb_time(end, offset),
        );
        let answer = self
            .query_for(
                device_id,
                channel_id,
                CmdType::RecordInfo.as_str(),
                &[
                    ("StartTime", &from),
                    ("EndTime", &to),
                    ("Secrecy", "0"),
                    ("Type", record_type),
                ],
            )
            .await?;
        let records = match answer {
            Answer::Records(r) => r,
            // A device that answers with one empty Response the assembler
            // never saw (no SumNum): no recordings.
            _ => Arc::new(RecordsAnswer {
                sn: 0,
                sum_num: Some(0),
                complete: true,
                messages: 1,
                items: Vec::new(),
            }),
        };
        if records.complete {
            lock(&self.inner)
                .record_cache
                .put(key, records.clone(), Instant::now());
        }
        Ok(records)
    }

    /// An assembled (or timed-out) RecordInfo answer goes to its waiter.
    pub(super) fn records_done(&self, mut a: Assembled<RecordItem>) {
        // Pages may be handled out of order; a timeline wants them by time
        // (MANSCDP times are fixed-width local times, so text order is time
        // order).
        a.items.sort_by(|x, y| {
            (x.start_time.as_deref(), x.end_time.as_deref())
                .cmp(&(y.start_time.as_deref(), y.end_time.as_deref()))
        });
        if !a.complete {
            tracing::warn!(device_id = a.device_id, sn = a.sn, items = a.items.len(), sum_num = ?a.sum_num, "record list incomplete (timed out)");
        }
        let answer = Arc::new(RecordsAnswer {
            sn: a.sn,
            sum_num: a.sum_num,
            complete: a.complete,
            messages: a.messages,
            items: a.items,
        });
        let key = (a.device_id, "recordinfo".to_owned(), a.sn);
        if let Some(w) = lock(&self.waiters).remove(&key) {
            let _ = w.send(Answer::Records(answer));
        }
    }
}
