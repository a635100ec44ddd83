//! Webhooks: events (device online/offline, alarms and the other stored
//! events; stream started/stopped, viewer count zero, source errors) POSTed
//! as JSON to configured HTTP endpoints, signed with HMAC-SHA256
//! (`X-Camgate-Signature: sha256=<hex>` over the body), retried with
//! exponential backoff; every delivery and attempt is stored for the API.
//!
//! Only `http://` endpoints: the appliance talks to a VMS on its LAN, and a
//! TLS client would add a second crypto stack to the ARM build.

pub mod client;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::media::{Hub, SourceState};
use crate::store::{Store, db};

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One event as webhooks receive it.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    pub kind: String,
    /// Unix milliseconds.
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Notice {
    pub fn new(kind: &str, message: String) -> Self {
        Self {
            kind: kind.to_owned(),
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            device_id: None,
            channel_id: None,
            stream: None,
            message,
            data: None,
        }
    }
}

/// The event kinds a webhook can ask for (besides `*`).
pub const KINDS: &[&str] = &[
    "device_online",
    "device_offline",
    "alarm",
    "stream_started",
    "stream_stopped",
    "viewers_zero",
    "source_error",
    "catalog_synced",
    "catalog_changed",
    "auth_failed",
    "protocol_error",
];

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", crate::util::hex(&mac.finalize().into_bytes()))
}

/// Wait before attempt `n + 1` after `n` failed attempts.
pub fn backoff(failed_attempts: u32) -> Duration {
    Duration::from_secs(1u64 << failed_attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

pub struct Webhooks {
    store: Store,
    wake: Notify,
}

impl Webhooks {
    /// Starts the delivery loop and the event sources.
    pub fn start(
        store: Store,
        notices: broadcast::Receiver<Notice>,
        hub: Arc<Hub>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let this = Arc::new(Self {
            store,
            wake: Notify::new(),
        });
        tokio::spawn(this.clone().listen(notices, shutdown.clone()));
        tokio::spawn(this.clone().watch_streams(hub, shutdown.clone()));
        tokio::spawn(this.clone().deliver_loop(shutdown));
        this
    }

    /// Queues `notice` for every webhook that wants it.
    pub async fn publish(&self, notice: Notice) {
        let payload = match serde_json::to_string(&notice) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "webhook payload not serialisable");
                return;
            }
        };
        let kind = notice.kind.clone();
        let queued = self
            .store
            .call(move |c| {
                let mut n = 0;
                for w in db::list_webhooks(c)? {
                    if w.wants(&kind) {
                        db::queue_delivery(c, w.id, &kind, &payload)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await;
        match queued {
            Ok(0) => {}
            Ok(_) => self.wake.notify_one(),
            Err(e) => {
                tracing::warn!(error = %e, kind = notice.kind, "cannot queue webhook deliveries")
            }
        }
    }

    async fn listen(
        self: Arc<Self>,
        mut rx: broadcast::Receiver<Notice>,
        shutdown: CancellationToken,
    ) {
        loop {
            let n = tokio::select! {
                () = shutdown.cancelled() => return,
                n = rx.recv() => n,
            };
            match n {
                Ok(n) => self.publish(n).await,
                Err(broadcast::error::RecvError::Lagged(k)) => {
                    tracing::warn!(skipped = k, "webhook event queue overflowed");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Stream lifecycle events from the hub, sampled every second.
    async fn watch_streams(self: Arc<Self>, hub: Arc<Hub>, shutdown: CancellationToken) {
        #[derive(Clone, Copy, PartialEq)]
        struct Seen {
            publishing: bool,
            viewers: usize,
            error: bool,
        }
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut now = HashMap::new();
            for s in hub.list() {
                let status = s.status().borrow().clone();
                let cur = Seen {
                    publishing: s.is_publishing(),
                    viewers: s.viewers(),
                    error: status.state == SourceState::Error,
                };
                let before = seen.get(s.id()).copied();
                let notice = |kind: &str, message: String| {
                    let mut n = Notice::new(kind, message);
                    n.stream = Some(s.id().to_owned());
                    n
                };
                if cur.publishing && !before.is_some_and(|b| b.publishing) {
                    self.publish(notice(
                        "stream_started",
                        format!("stream {} started", s.id()),
                    ))
                    .await;
                }
                if let Some(b) = before {
                    if b.publishing && !cur.publishing {
                        self.publish(notice(
                            "stream_stopped",
                            format!("stream {} stopped", s.id()),
                        ))
                        .await;
                    }
                    if b.viewers > 0 && cur.viewers == 0 {
                        self.publish(notice(
                            "viewers_zero",
                            format!("stream {} has no viewers", s.id()),
                        ))
                        .await;
                    }
                }
                if cur.error && !before.is_some_and(|b| b.error) {
                    let mut n = notice(
                        "source_error",
                        format!(
                            "stream {}: {}",
                            s.id(),
                            status.reason.as_deref().unwrap_or("source error")
                        ),
                    );
                    n.data = status.reason.map(|r| serde_json::json!({ "reason": r }));
                    self.publish(n).await;
                }
                now.insert(s.id().to_owned(), cur);
            }
            for (id, b) in &seen {
                if b.publishing && !now.contains_key(id) {
                    let mut n = Notice::new("stream_stopped", format!("stream {id} stopped"));
                    n.stream = Some(id.clone());
                    self.publish(n).await;
                }
            }
            seen = now;
        }
    }

    async fn deliver_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let due = self
                .store
                .call(|c| db::due_deliveries(c, 32))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read webhook deliveries");
                    Vec::new()
                });
            if due.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            for d in due {
                let id = d.webhook_id;
                let Ok(Some(hook)) = self.store.call(move |c| db::get_webhook(c, id)).await else {
                    continue;
                };
                let sig = signature(&hook.secret, d.payload.as_bytes());
                let headers = [
                    ("X-Camgate-Event", d.event.clone()),
                    ("X-Camgate-Delivery", d.id.to_string()),
                    ("X-Camgate-Signature", sig),
                ];
                let result = client::post_json(&hook.url, &headers, d.payload.as_bytes()).await;
                let attempts = d.attempts + 1;
                let (status, error) = match &result {
                    Ok(code) => (Some(*code), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                let ok = matches!(status, Some(200..=299));
                let retry_at = (!ok && attempts < MAX_ATTEMPTS).then(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |t| t.as_millis() as i64)
                        + backoff(attempts).as_millis() as i64
                });
                if !ok {
                    tracing::warn!(webhook = hook.id, url = hook.url, delivery = d.id, attempts, status = ?status, error = ?error, retry = retry_at.is_some(), "webhook delivery failed");
                } else {
                    tracing::debug!(webhook = hook.id, delivery = d.id, "webhook delivered");
                }
                let did = d.id;
                if let Err(e) = self
                    .store
                    .call(move |c| db::record_attempt(c, did, status, error.as_deref(), retry_at))
                    .await
                {
                    tracing::warn!(error = %e, "cannot record a webhook attempt");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
