//! The registry of streams, by stream id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::demand::DemandPolicy;
use super::fanout::FanoutConfig;
use super::stream::Stream;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("stream {0:?} already exists")]
    Exists(String),
}

pub struct Hub {
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    fanout: FanoutConfig,
}

impl Hub {
    pub fn new(fanout: FanoutConfig) -> Self {
        Self {
            streams: Mutex::new(HashMap::new()),
            fanout,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a stream and starts its on-demand supervisor. Needs a tokio runtime.
    pub fn create(
        &self,
        id: &str,
        kind: &'static str,
        policy: DemandPolicy,
    ) -> Result<Arc<Stream>, HubError> {
        let mut map = self.map();
        if map.contains_key(id) {
            return Err(HubError::Exists(id.to_owned()));
        }
        let stream = Stream::new(id.to_owned(), kind, policy, self.fanout);
        stream.spawn_supervisor();
        map.insert(id.to_owned(), stream.clone());
        Ok(stream)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Stream>> {
        self.map().get(id).cloned()
    }

    /// Removes and closes a stream: its source stops and its viewers see the end.
    pub fn remove(&self, id: &str) -> Option<Arc<Stream>> {
        let stream = self.map().remove(id);
        if let Some(s) = &stream {
            s.close();
        }
        stream
    }

    /// Streams sorted by id.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by(|a, b| a.id().cmp(b.id()));
        v
    }

    /// Closes every stream (shutdown).
    pub fn close_all(&self) {
        let streams: Vec<_> = self.map().drain().map(|(_, s)| s).collect();
        for s in streams {
            s.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn on_demand(grace: u64) -> DemandPolicy {
        DemandPolicy {
            always_on: false,
            grace: Duration::from_secs(grace),
        }
    }

    /// The on-demand lifecycle through the real tokio shell, on tokio's paused
    /// clock: start on first viewer, stop one grace period after the last.
    #[tokio::test(start_paused = true)]
    async fn on_demand_start_and_stop_follow_viewers_and_grace() {
        let hub = Hub::new(FanoutConfig::default());
        let s = hub.create("cam", "test", on_demand(10)).unwrap();
        let mut wanted = s.wanted();
        assert!(!*wanted.borrow());

        let v1 = s.add_viewer();
        let v2 = s.add_viewer();
        assert!(*wanted.borrow_and_update());
        drop(v1);
        drop(v2);
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert!(*wanted.borrow(), "still inside the grace period");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!*wanted.borrow(), "stopped after the grace period");

        // A viewer inside the grace period keeps it running.
        let v = s.add_viewer();
        drop(v);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let v = s.add_viewer();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(*wanted.borrow());
        drop(v);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(!*wanted.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn always_on_runs_without_viewers() {
        let hub = Hub::new(FanoutConfig::default());
        let s = hub
            .create(
                "cam",
                "test",
                DemandPolicy {
                    always_on: true,
                    grace: Duration::from_secs(1),
                },
            )
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(*s.wanted().borrow());
        s.set_policy(on_demand(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!*s.wanted().borrow());
    }

    #[tokio::test]
    async fn duplicate_ids_are_refused_and_remove_closes() {
        let hub = Hub::new(FanoutConfig::default());
        let s = hub.create("a", "test", on_demand(1)).unwrap();
        assert!(hub.create("a", "test", on_demand(1)).is_err());
        assert_eq!(hub.list().len(), 1);
        hub.remove("a");
        assert!(s.is_closed());
        assert!(hub.get("a").is_none());
    }
}
