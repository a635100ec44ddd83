//! The GB28181 platform: the tokio shell that devices register to. It takes
//! requests from the SIP endpoint and applies the sans-IO parts (registrar,
//! MANSCDP, multi-message assembly), keeps each device's runtime state
//! (where it is, whether it is online), stores what devices report, and asks
//! devices questions on behalf of the REST API.
//!
//! Runtime state lives in memory and is written through on changes that
//! matter (registration, online/offline, catalog, info); keepalive times are
//! flushed in batches so a device's keepalives do not each cost a write to the
//! SD card.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::assemble::{Assembled, Assembler, AssemblerLimits};
use super::manscdp::{self, Body, CatalogItem, Charset, CmdType, Message, RecordItem, Root};
use super::registrar::{Credential, RegisterFacts, Registrar, RegistrarLimits, Verdict};
use crate::sip::endpoint::{InboundRequest, SipEndpoint, SipError};
use crate::sip::transaction::{Peer, Transport};
use crate::sip::{digest, msg};
use crate::store::{SipSettings, Store, StoreError, db};

#[path = "control.rs"]
mod control;
#[path = "records.rs"]
mod records;
pub use records::RecordsAnswer;
#[path = "invite.rs"]
mod invite;
pub use control::{ControlField, Preset, presets_of};
pub use invite::{Dialog, InviteRequest};

/// Platform behaviour fixed at start (configuration file / flags).
#[derive(Clone, Debug)]
pub struct GbConfig {
    /// Offer `qop="auth"` in challenges (devices may still answer without).
    pub digest_qop: bool,
    /// How long the API waits for a device's MANSCDP answer.
    pub query_timeout: Duration,
    /// A multi-message answer is finished as incomplete after this much silence.
    pub catalog_idle_timeout: Duration,
    /// Catalog subscription period asked for, seconds.
    pub subscribe_expires: u32,
    /// The address devices reach us at, for Via/Contact; else the local
    /// address that routes to each device.
    pub public_ip: Option<IpAddr>,
    /// Longest registration granted, seconds.
    pub max_expires: u32,
}

impl Default for GbConfig {
    fn default() -> Self {
        Self {
            digest_qop: true,
            query_timeout: Duration::from_secs(10),
            catalog_idle_timeout: Duration::from_secs(10),
            subscribe_expires: 3600,
            public_ip: None,
            max_expires: 86_400,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GbError {
    #[error("device {0} is not known")]
    UnknownDevice(String),
    #[error("device {0} is offline (not registered or no keepalive)")]
    Offline(String),
    #[error("device {device_id} did not take the {cmd} query: SIP {code}")]
    Rejected {
        device_id: String,
        cmd: String,
        code: u16,
    },
    #[error("device {device_id} did not answer the {cmd} query within {secs} s")]
    NoAnswer {
        device_id: String,
        cmd: String,
        secs: u64,
    },
    #[error("SIP to device {device_id}: {source}")]
    Sip {
        device_id: String,
        #[source]
        source: SipError,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("no free SSRC for device {0}: too many sessions")]
    NoSsrc(String),
    #[error("device {device_id} answered an unusable SDP: {reason}")]
    BadAnswer { device_id: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A device's business answer to a query.
#[derive(Clone, Debug)]
pub enum Answer {
    Message(Box<Message>),
    Catalog(CatalogSummary),
    /// A RecordInfo answer, assembled from all its MESSAGEs.
    Records(std::sync::Arc<RecordsAnswer>),
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CatalogSummary {
    pub sn: u64,
    pub items: usize,
    pub sum_num: Option<u32>,
    pub complete: bool,
    pub messages: u32,
}

type AnswerKey = (String, String, u64);

#[derive(Clone, Debug)]
struct DeviceState {
    peer: Peer,
    registered_until: Option<Instant>,
    last_seen: Instant,
    last_seen_unix: i64,
    online: bool,
    charset_override: Option<Charset>,
    charset_detected: Option<Charset>,
}

impl DeviceState {
    fn registered(&self, now: Instant) -> bool {
        self.registered_until.is_some_and(|u| u > now)
    }

    /// The charset to write to this device in (gb28181.md §2: reply in what it
    /// sends; 2016 devices expect GB2312 when nothing is known).
    fn reply_charset(&self) -> Charset {
        self.charset_override
            .or(self.charset_detected)
            .unwrap_or(Charset::Gb18030)
    }
}

/// What a subscription to a device is for (GB/T 28181-2016 §9.11 catalog,
/// §9.7 alarm; gb28181.md §3 "Subscription").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubKind {
    Catalog,
    Alarm,
}

impl SubKind {
    fn name(self) -> &'static str {
        match self {
            SubKind::Catalog => "Catalog",
            SubKind::Alarm => "Alarm",
        }
    }

    /// The SUBSCRIBE body: a Catalog query, or an Alarm query for every
    /// priority (1 highest to 4) and every method (0 = all).
    fn body(self, sn: u64, device_id: &str) -> String {
        match self {
            SubKind::Catalog => manscdp::query("Catalog", sn, device_id),
            SubKind::Alarm => manscdp::query_with(
                "Alarm",
                sn,
                device_id,
                &[
                    ("StartAlarmPriority", "1"),
                    ("EndAlarmPriority", "4"),
                    ("AlarmMethod", "0"),
                ],
            ),
        }
    }
}

struct Subscription {
    peer: Peer,
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    event_id: u32,
    refresh_at: Instant,
}

struct Inner {
    registrar: Registrar,
    devices: HashMap<String, DeviceState>,
    catalogs: Assembler<CatalogItem>,
    records: Assembler<RecordItem>,
    /// Recent record queries, answered again without asking the device.
    record_cache: records::RecordCache,
    subscriptions: HashMap<String, Subscription>,
    alarm_subscriptions: HashMap<String, Subscription>,
    syncing: HashSet<String>,
    /// Devices whose keepalive time/address changed since the last flush.
    dirty: HashSet<String>,
    /// INVITE dialogs by Call-ID: told when the device sends BYE.
    dialogs: HashMap<String, tokio::sync::watch::Sender<bool>>,
    ssrcs: super::media::SsrcPool,
}

pub struct Platform {
    endpoint: Arc<SipEndpoint>,
    store: Store,
    config: GbConfig,
    settings: RwLock<SipSettings>,
    inner: Mutex<Inner>,
    waiters: Mutex<HashMap<AnswerKey, oneshot::Sender<Answer>>>,
    sn: AtomicU64,
    counter: AtomicU32,
    local_ips: Mutex<HashMap<IpAddr, IpAddr>>,
    utc_offset: i64,
    /// MediaStatus notifications (device, channel, NotifyType): playback
    /// and download sessions end on 121.
    media_status: tokio::sync::broadcast::Sender<MediaStatusNote>,
    /// Stored events, for webhooks.
    notices: tokio::sync::broadcast::Sender<crate::webhooks::Notice>,
    /// Events the store refused (disk full, read-only), retried in order.
    unstored_events: Mutex<std::collections::VecDeque<crate::webhooks::Notice>>,
}

/// Events kept in memory while the store refuses writes.
const MAX_UNSTORED_EVENTS: usize = 1000;

/// A device's Notify/MediaStatus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaStatusNote {
    pub device_id: String,
    pub channel_id: String,
    pub notify_type: Option<u32>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn random_token(bytes: usize) -> String {
    crate::util::random_hex(bytes).unwrap_or_else(|_| {
        // The OS RNG failing is near impossible; a time-based value keeps
        // SIP working (tags and branches need uniqueness, not secrecy).
        format!(
            "{:x}",
            SystemTime::now().elapsed().map_or(0, |d| d.as_nanos())
        )
    })
}

fn charset_label(c: Charset) -> &'static str {
    match c {
        Charset::Utf8 => "utf-8",
        Charset::Gb18030 => "gb18030",
    }
}

pub fn parse_charset_label(s: &str) -> Option<Charset> {
    Charset::from_label(s)
}

/// GB28181 ids are 20 digits; other lengths are seen in the field, so any
/// short run of letters and digits is accepted as an id.
pub fn valid_device_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Platform {
    /// Loads the stored devices and settings and starts serving `inbound`.
    pub async fn start(
        endpoint: Arc<SipEndpoint>,
        inbound: mpsc::Receiver<InboundRequest>,
        store: Store,
        config: GbConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        let settings: SipSettings = store
            .call(|c| db::get_setting(c, db::SIP_KEY))
            .await?
            .unwrap_or_default();
        let stored = store.call(|c| db::all_devices(c)).await?;
        let now = Instant::now();
        let now_unix = unix_now();
        let mut devices = HashMap::new();
        for d in &stored {
            let Some(peer) = stored_peer(d) else { continue };
            let registered_until = match (d.registered_at, d.expires) {
                (Some(at), Some(exp)) if at + exp > now_unix => {
                    Some(now + Duration::from_secs((at + exp - now_unix) as u64))
                }
                _ => None,
            };
            let seen = d.last_keepalive.unwrap_or(0);
            let ago = Duration::from_secs((now_unix - seen).max(0) as u64);
            devices.insert(
                d.id.clone(),
                DeviceState {
                    peer,
                    registered_until,
                    last_seen: now.checked_sub(ago).unwrap_or(now),
                    last_seen_unix: seen,
                    online: d.online,
                    charset_override: d.charset_override.as_deref().and_then(Charset::from_label),
                    charset_detected: d.charset_detected.as_deref().and_then(Charset::from_label),
                },
            );
        }
        let realm = settings.domain.clone();
        let platform = Arc::new(Self {
            media_status: tokio::sync::broadcast::channel(64).0,
            notices: tokio::sync::broadcast::channel(1024).0,
            unstored_events: Mutex::default(),
            endpoint,
            store,
            settings: RwLock::new(settings),
            inner: Mutex::new(Inner {
                registrar: Registrar::new(
                    &realm,
                    RegistrarLimits::default(),
                    Box::new(|| random_token(16)),
                ),
                devices,
                catalogs: Assembler::new(AssemblerLimits {
                    idle_timeout: config.catalog_idle_timeout,
                    ..AssemblerLimits::default()
                }),
                records: Assembler::new(AssemblerLimits {
                    idle_timeout: config.catalog_idle_timeout,
                    ..AssemblerLimits::default()
                }),
                record_cache: records::RecordCache::default(),
                subscriptions: HashMap::new(),
                alarm_subscriptions: HashMap::new(),
                syncing: HashSet::new(),
                dirty: HashSet::new(),
                dialogs: HashMap::new(),
                ssrcs: super::media::SsrcPool::new(&realm),
            }),
            config,
            waiters: Mutex::default(),
            sn: AtomicU64::new(1 + (unix_now() as u64 % 100_000) * 1000),
            counter: AtomicU32::new(1),
            local_ips: Mutex::default(),
            utc_offset: crate::util::local_utc_offset_secs(SystemTime::now()),
        });
        tracing::info!(devices = stored.len(), "GB28181 platform started");
        tokio::spawn(platform.clone().serve(inbound, shutdown.clone()));
        tokio::spawn(platform.clone().tick_loop(shutdown));
        Ok(platform)
    }

    pub fn settings(&self) -> SipSettings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies new settings (already stored by the caller).
    pub fn set_settings(&self, s: SipSettings) {
        {
            let mut inner = lock(&self.inner);
            inner.registrar.set_realm(&s.domain);
            inner.ssrcs.set_domain(&s.domain);
        }
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Every event the platform stores, from now on (for webhooks).
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<crate::webhooks::Notice> {
        self.notices.subscribe()
    }

    /// The SIP endpoint's counters.
    pub fn sip_stats(&self) -> &crate::sip::endpoint::EndpointStats {
        self.endpoint.stats()
    }

    /// Devices (registered) online now, and known in memory.
    pub fn device_counts(&self) -> (usize, usize) {
        let inner = lock(&self.inner);
        let online = inner.devices.values().filter(|d| d.online).count();
        (online, inner.devices.len())
    }

    /// MediaStatus notifications from now on.
    pub fn media_status(&self) -> tokio::sync::broadcast::Receiver<MediaStatusNote> {
        self.media_status.subscribe()
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// Whether the device is registered and keeping alive.
    pub fn is_online(&self, device_id: &str) -> bool {
        lock(&self.inner)
            .devices
            .get(device_id)
            .is_some_and(|d| d.online && d.registered(Instant::now()))
    }

    fn next_sn(&self) -> u64 {
        self.sn.fetch_add(1, Ordering::Relaxed)
    }

    async fn serve(
        self: Arc<Self>,
        mut inbound: mpsc::Receiver<InboundRequest>,
        shutdown: CancellationToken,
    ) {
        loop {
            let req = tokio::select! {
                () = shutdown.cancelled() => break,
                r = inbound.recv() => match r { Some(r) => r, None => break },
            };
            let this = self.clone();
            tokio::spawn(async move { this.handle(req).await });
        }
    }

    async fn handle(self: Arc<Self>, req: InboundRequest) {
        let method = req.request.method.to_string();
        match method.as_str() {
            "REGISTER" => self.on_register(&req).await,
            "MESSAGE" => self.on_message(&req, false).await,
            "NOTIFY" => self.on_message(&req, true).await,
            "ACK" => {}
            "BYE" => self.on_bye(&req).await,
            "OPTIONS" => self.reply(&req, 200, &[]).await,
            _ => {
                self.reply(
                    &req,
                    405,
                    &[("Allow", "REGISTER, MESSAGE, NOTIFY, OPTIONS, ACK, BYE")],
                )
                .await
            }
        }
    }

    async fn reply(&self, req: &InboundRequest, code: u16, headers: &[(&str, &str)]) {
        let mut resp = msg::response(&req.request, code, req.peer.addr, Some(&random_token(6)));
        for (n, v) in headers {
            resp.headers
                .push(rsip::Header::Other((*n).into(), (*v).into()));
        }
        resp.headers.push(rsip::Header::Other(
            "User-Agent".into(),
            concat!("camgate/", env!("CARGO_PKG_VERSION")).into(),
        ));
        self.endpoint.respond(req, resp).await;
    }

    // -----------------------------------------------------------------------
    // REGISTER
    // -----------------------------------------------------------------------

    async fn credential(&self, device_id: &str) -> Result<Credential, StoreError> {
        let settings = self.settings();
        let id = device_id.to_owned();
        let record = self.store.call(move |c| db::get_device(c, &id)).await?;
        let default = || match &settings.password {
            Some(pw) => Credential::Ha1(digest::ha1(device_id, &settings.domain, pw)),
            None => Credential::Refused(
                "no password: set the platform's default device password or the device's own",
            ),
        };
        Ok(match record {
            Some(d) => match (d.ha1, d.ha1_realm) {
                (Some(ha1), Some(realm)) if realm == settings.domain => Credential::Ha1(ha1),
                (Some(_), _) => Credential::Refused(
                    "the device's password was set for another SIP domain: set it again",
                ),
                (None, _) => default(),
            },
            None if settings.auto_accept => default(),
            None => Credential::Refused("unknown device and auto-accept is off"),
        })
    }

    async fn on_register(self: &Arc<Self>, req: &InboundRequest) {
        let headers = &req.request.headers;
        let to = msg::header_value(headers, "To").unwrap_or_default();
        let from = msg::header_value(headers, "From").unwrap_or_default();
        let Some(device_id) = msg::uri_user(&to)
            .or_else(|| msg::uri_user(&from))
            .map(str::to_owned)
            .filter(|id| valid_device_id(id))
        else {
            tracing::warn!(peer = %req.peer.addr, "REGISTER without a usable device id in To/From");
            self.reply(req, 400, &[]).await;
            return;
        };
        let version = msg::header_value(headers, "X-GB-Ver");
        let ver_hdr: Vec<(&str, &str)> = version
            .as_deref()
            .map(|v| ("X-GB-Ver", v))
            .into_iter()
            .collect();
        let contact = msg::header_value(headers, "Contact");
        let expires = msg::header_value(headers, "Expires")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .or_else(|| {
                contact
                    .as_deref()
                    .and_then(|c| msg::param(c, "expires"))
                    .and_then(|v| v.parse().ok())
            });
        let Some(expires) = expires else {
            tracing::warn!(device_id, peer = %req.peer.addr, "REGISTER without Expires: 400");
            self.reply(req, 400, &ver_hdr).await;
            return;
        };
        let credential = match self.credential(&device_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(device_id, error = %e, "cannot read device credential");
                self.reply(req, 500, &ver_hdr).await;
                return;
            }
        };
        let authorization = msg::header_value(headers, "Authorization");
        let facts = RegisterFacts {
            device_id: &device_id,
            source_ip: req.peer.addr.ip(),
            authorization: authorization.as_deref(),
        };
        let (verdict, realm) = {
            let mut inner = lock(&self.inner);
            let v = inner.registrar.check(&facts, &credential, Instant::now());
            (v, inner.registrar.realm().to_owned())
        };
        match verdict {
            Verdict::Challenge { nonce, stale } => {
                let www = super::registrar::challenge_header(
                    &realm,
                    &nonce,
                    stale,
                    self.config.digest_qop,
                );
                let mut h = ver_hdr.clone();
                h.push(("WWW-Authenticate", &www));
                self.reply(req, 401, &h).await;
            }
            Verdict::Reject { code, reason } => {
                tracing::warn!(device_id, peer = %req.peer.addr, code, reason, "registration refused");
                self.reply(req, code, &ver_hdr).await;
                if code == 403 && !reason.contains("refused for") {
                    self.event(
                        "auth_failed",
                        Some(&device_id),
                        None,
                        format!("registration from {} refused: {reason}", req.peer.addr),
                        None,
                    )
                    .await;
                }
            }
            Verdict::Accept => {
                let expires = expires.min(self.config.max_expires);
                let date = crate::util::gb_sip_date(SystemTime::now(), self.utc_offset);
                let exp = expires.to_string();
                let mut h = ver_hdr.clone();
                h.push(("Date", &date));
                h.push(("Expires", &exp));
                if let Some(c) = contact.as_deref() {
                    h.push(("Contact", c));
                }
                if expires == 0 {
                    self.unregister(&device_id).await;
                    self.reply(req, 200, &h).await;
                } else {
                    let user_agent = msg::header_value(headers, "User-Agent");
                    let new = self
                        .register(
                            &device_id,
                            req.peer,
                            expires,
                            contact.clone(),
                            user_agent,
                            version.clone(),
                        )
                        .await;
                    self.reply(req, 200, &h).await;
                    if let Ok(true) = new {
                        self.start_sync(&device_id);
                    }
                }
            }
        }
    }

    /// Records a registration. Ok(true) when the device was not registered
    /// before (a new session: its catalog is synchronised).
    async fn register(
        &self,
        device_id: &str,
        peer: Peer,
        expires: u32,
        contact: Option<String>,
        user_agent: Option<String>,
        version: Option<String>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let now_unix = unix_now();
        let was = {
            let inner = lock(&self.inner);
            inner
                .devices
                .get(device_id)
                .map(|d| (d.registered(now), d.online))
        };
        let reg = db::Registration {
            id: device_id.to_owned(),
            transport: transport_name(peer.transport).into(),
            address: peer.addr.to_string(),
            contact,
            user_agent,
            gb_version: version.clone(),
            expires: i64::from(expires),
            at: now_unix,
        };
        let stored = self
            .store
            .call(move |c| db::record_registration(c, &reg))
            .await;
        if let Err(e) = &stored {
            // Keep the device working from memory; the write is retried at
            // the next registration.
            tracing::error!(device_id, error = %e, "cannot store registration");
        }
        let record = {
            let id = device_id.to_owned();
            self.store
                .call(move |c| db::get_device(c, &id))
                .await
                .ok()
                .flatten()
        };
        {
            let mut inner = lock(&self.inner);
            let state = inner
                .devices
                .entry(device_id.to_owned())
                .or_insert(DeviceState {
                    peer,
                    registered_until: None,
                    last_seen: now,
                    last_seen_unix: now_unix,
                    online: false,
                    charset_override: None,
                    charset_detected: None,
                });
            state.peer = peer;
            state.registered_until = Some(now + Duration::from_secs(u64::from(expires)));
            state.last_seen = now;
            state.last_seen_unix = now_unix;
            state.online = true;
            if let Some(r) = &record {
                state.charset_override =
                    r.charset_override.as_deref().and_then(Charset::from_label);
            }
        }
        let new_session = !matches!(was, Some((true, true)));
        tracing::info!(device_id, peer = %peer.addr, transport = transport_name(peer.transport), expires, version = version.as_deref().unwrap_or("2016 (no X-GB-Ver)"), new_session, "device registered");
        if new_session {
            self.event(
                "device_online",
                Some(device_id),
                None,
                format!(
                    "registered from {} over {} for {expires} s",
                    peer.addr,
                    transport_name(peer.transport)
                ),
                None,
            )
            .await;
        }
        stored.map(|()| new_session)
    }

    async fn unregister(&self, device_id: &str) {
        {
            let mut inner = lock(&self.inner);
            if let Some(d) = inner.devices.get_mut(device_id) {
                d.registered_until = None;
                d.online = false;
            }
            inner.subscriptions.remove(device_id);
            inner.alarm_subscriptions.remove(device_id);
            inner.alarm_subscriptions.remove(device_id);
            inner.catalogs.forget_device(device_id);
        }
        tracing::info!(device_id, "device unregistered");
        self.online_changed(device_id, false, true, "unregistered (Expires: 0)".into())
            .await;
    }

    /// Forgets a device deleted through the API.
    pub fn forget(&self, device_id: &str) {
        let mut inner = lock(&self.inner);
        inner.devices.remove(device_id);
        inner.subscriptions.remove(device_id);
        inner.alarm_subscriptions.remove(device_id);
        inner.catalogs.forget_device(device_id);
        inner.dirty.remove(device_id);
    }

    /// A changed per-device charset override.
    pub fn set_charset_override(&self, device_id: &str, charset: Option<Charset>) {
        if let Some(d) = lock(&self.inner).devices.get_mut(device_id) {
            d.charset_override = charset;
        }
    }

    // -----------------------------------------------------------------------
    // MESSAGE / NOTIFY
    // -----------------------------------------------------------------------

    async fn on_message(&self, req: &InboundRequest, is_notify: bool) {
        let from = msg::header_value(&req.request.headers, "From").unwrap_or_default();
        let Some(device_id) = msg::uri_user(&from).map(str::to_owned) else {
            self.reply(req, 400, &[]).await;
            return;
        };
        let now = Instant::now();
        let charset_override = {
            let mut inner = lock(&self.inner);
            match inner.devices.get_mut(&device_id) {
                Some(d) if d.registered(now) => {
                    // Any request proves the device is there; follow it if
                    // its address changed (NAT rebinding).
                    if d.peer != req.peer {
                        tracing::info!(device_id, old = %d.peer.addr, new = %req.peer.addr, "device address changed");
                        d.peer = req.peer;
                    }
                    Some(d.charset_override)
                }
                _ => None,
            }
        };
        let Some(charset_override) = charset_override else {
            // Unknown or unregistered: 404 makes the device register again
            // (gb28181.md §2).
            tracing::info!(device_id, peer = %req.peer.addr, "request from an unregistered device: 404");
            self.reply(req, 404, &[]).await;
            return;
        };
        let parsed = match manscdp::parse(&req.request.body, charset_override) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(device_id, peer = %req.peer.addr, error = %e, "bad MANSCDP body: 400");
                self.reply(req, 400, &[]).await;
                self.event(
                    "protocol_error",
                    Some(&device_id),
                    None,
                    format!("unreadable MANSCDP body: {e}"),
                    None,
                )
                .await;
                return;
            }
        };
        // Answer at once: devices send the next part of a multi-message answer
        // only after the 200 for the previous one.
        self.reply(req, 200, &[]).await;
        self.seen(&device_id, now).await;
        if !parsed.ascii_only {
            self.note_charset(&device_id, parsed.charset).await;
        }
        if is_notify {
            let state =
                msg::header_value(&req.request.headers, "Subscription-State").unwrap_or_default();
            if state
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("terminated")
            {
                // The dialog says which subscription ended.
                let call_id =
                    msg::header_value(&req.request.headers, "Call-ID").unwrap_or_default();
                let mut inner = lock(&self.inner);
                let which = if inner
                    .alarm_subscriptions
                    .get(&device_id)
                    .is_some_and(|s| s.call_id == call_id.trim())
                {
                    inner.alarm_subscriptions.remove(&device_id);
                    "alarm"
                } else {
                    inner.subscriptions.remove(&device_id);
                    "catalog"
                };
                drop(inner);
                tracing::info!(
                    device_id,
                    subscription = which,
                    "device ended a subscription"
                );
            }
        }
        self.dispatch(&device_id, parsed.message).await;
    }

    /// Stores an online/offline change (an unregistration also clears the
    /// registration) and records it as an event.
    async fn online_changed(&self, device_id: &str, online: bool, unregistered: bool, why: String) {
        let id = device_id.to_owned();
        if let Err(e) = self
            .store
            .call(move |c| db::set_online(c, &id, online, unregistered))
            .await
        {
            tracing::error!(device_id, error = %e, "cannot store online state");
        }
        let kind = if online {
            "device_online"
        } else {
            "device_offline"
        };
        self.event(kind, Some(device_id), None, why, None).await;
    }

    /// A request from a registered device: it is alive.
    async fn seen(&self, device_id: &str, now: Instant) {
        let came_back = {
            let mut inner = lock(&self.inner);
            let Some(d) = inner.devices.get_mut(device_id) else {
                return;
            };
            d.last_seen = now;
            d.last_seen_unix = unix_now();
            let came_back = !d.online;
            d.online = true;
            inner.dirty.insert(device_id.to_owned());
            came_back
        };
        if came_back {
            tracing::info!(device_id, "device online again (keepalive)");
            self.online_changed(device_id, true, false, "keepalives resumed".into())
                .await;
        }
    }

    async fn note_charset(&self, device_id: &str, charset: Charset) {
        let changed = {
            let mut inner = lock(&self.inner);
            match inner.devices.get_mut(device_id) {
                Some(d) if d.charset_detected != Some(charset) => {
                    d.charset_detected = Some(charset);
                    true
                }
                _ => false,
            }
        };
        if changed {
            let id = device_id.to_owned();
            if let Err(e) = self
                .store
                .call(move |c| db::set_charset_detected(c, &id, charset_label(charset)))
                .await
            {
                tracing::warn!(device_id, error = %e, "cannot store detected charset");
            }
        }
    }

    async fn dispatch(&self, device_id: &str, m: Message) {
        tracing::debug!(device_id, root = m.root.as_str(), cmd = %m.cmd_type, sn = m.sn, "MANSCDP");
        match (m.root, &m.cmd_type) {
            (Root::Notify, CmdType::Keepalive) => {}
            (Root::Response, CmdType::Catalog) => {
                if let Body::Catalog(c) = m.body {
                    let done = lock(&self.inner).catalogs.push(
                        device_id,
                        m.sn,
                        c.sum_num,
                        c.items,
                        Instant::now(),
                    );
                    for a in done {
                        self.catalog_done(a).await;
                    }
                }
            }
            (Root::Notify, CmdType::Catalog) => {
                if let Body::Catalog(c) = m.body {
                    self.catalog_events(device_id, c.items).await;
                }
            }
            (Root::Response, CmdType::RecordInfo) => {
                if let Body::RecordInfo(r) = m.body {
                    let done = lock(&self.inner).records.push(
                        device_id,
                        m.sn,
                        r.sum_num,
                        r.items,
                        Instant::now(),
                    );
                    for a in done {
                        self.records_done(a);
                    }
                }
            }
            (Root::Notify, CmdType::Alarm) => self.on_alarm(device_id, m).await,
            (Root::Notify, CmdType::MediaStatus) => {
                if let Body::MediaStatus(ms) = &m.body {
                    tracing::info!(device_id, channel_id = m.device_id, notify_type = ?ms.notify_type, "media status");
                    let _ = self.media_status.send(MediaStatusNote {
                        device_id: device_id.to_owned(),
                        channel_id: m.device_id.clone(),
                        notify_type: ms.notify_type,
                    });
                }
            }
            (Root::Notify, CmdType::MobilePosition) => {
                if let Body::MobilePosition(p) = &m.body {
                    let json = serde_json::to_value(p).unwrap_or_default();
                    let (dev, ch) = (device_id.to_owned(), m.device_id.clone());
                    match self
                        .store
                        .call(move |c| db::set_position(c, &dev, &ch, &json))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => tracing::debug!(
                            device_id,
                            channel_id = m.device_id,
                            "position for a node not in the catalog"
                        ),
                        Err(e) => tracing::warn!(device_id, error = %e, "cannot store position"),
                    }
                }
            }
            (Root::Response, _) => {
                if let (CmdType::DeviceInfo, Body::DeviceInfo(info)) = (&m.cmd_type, &m.body) {
                    let (id, info) = (device_id.to_owned(), info.clone());
                    if let Err(e) = self
                        .store
                        .call(move |c| db::set_device_info(c, &id, &info))
                        .await
                    {
                        tracing::warn!(device_id, error = %e, "cannot store device info");
                    }
                }
                let key = (
                    device_id.to_owned(),
                    m.cmd_type.as_str().to_ascii_lowercase(),
                    m.sn,
                );
                match lock(&self.waiters).remove(&key) {
                    Some(w) => {
                        let _ = w.send(Answer::Message(Box::new(m)));
                    }
                    None => tracing::debug!(
                        device_id,
                        sn = key.2,
                        cmd = key.1,
                        "answer nobody waits for"
                    ),
                }
            }
            _ => {
                tracing::debug!(device_id, root = m.root.as_str(), cmd = %m.cmd_type, "MANSCDP message not handled")
            }
        }
    }

    async fn catalog_done(&self, a: Assembled<CatalogItem>) {
        let summary = CatalogSummary {
            sn: a.sn,
            items: a.items.len(),
            sum_num: a.sum_num,
            complete: a.complete,
            messages: a.messages,
        };
        let device_id = a.device_id.clone();
        let (dev, items, complete) = (a.device_id, a.items, a.complete);
        match self
            .store
            .call(move |c| db::store_catalog(c, &dev, &items, complete))
            .await
        {
            Ok(()) => {
                if complete {
                    tracing::info!(
                        device_id,
                        items = summary.items,
                        messages = summary.messages,
                        "catalog synchronised"
                    );
                } else {
                    tracing::warn!(device_id, items = summary.items, sum_num = ?summary.sum_num, "catalog incomplete (timed out); stored what arrived, removed nothing");
                }
                self.event(
                    "catalog_synced",
                    Some(&device_id),
                    None,
                    format!(
                        "catalog: {} nodes in {} messages{}",
                        summary.items,
                        summary.messages,
                        if complete {
                            ""
                        } else {
                            " (incomplete: timed out)"
                        }
                    ),
                    serde_json::to_value(&summary).ok().as_ref(),
                )
                .await;
            }
            Err(e) => tracing::error!(device_id, error = %e, "cannot store catalog"),
        }
        let key = (device_id, "catalog".to_owned(), summary.sn);
        if let Some(w) = lock(&self.waiters).remove(&key) {
            let _ = w.send(Answer::Catalog(summary));
        }
    }

    async fn catalog_events(&self, device_id: &str, items: Vec<CatalogItem>) {
        for item in items {
            let event = item
                .event
                .as_ref()
                .map_or("UPDATE".to_owned(), |e| e.as_str().to_owned());
            let (dev, it) = (device_id.to_owned(), item.clone());
            match self
                .store
                .call(move |c| db::apply_catalog_event(c, &dev, &it))
                .await
            {
                Ok(changed) => {
                    tracing::info!(
                        device_id,
                        channel_id = item.device_id,
                        event,
                        changed,
                        "catalog notify"
                    );
                    self.event(
                        "catalog_event",
                        Some(device_id),
                        Some(&item.device_id),
                        format!("{}: {event}", item.device_id),
                        None,
                    )
                    .await;
                }
                Err(e) => tracing::warn!(device_id, error = %e, "cannot apply catalog notify"),
            }
        }
    }

    async fn on_alarm(&self, device_id: &str, m: Message) {
        let Body::Alarm(alarm) = &m.body else { return };
        let text = super::alarm::describe(alarm);
        tracing::info!(device_id, channel_id = m.device_id, alarm = text, "alarm");
        let data = serde_json::to_value(alarm).ok();
        self.event(
            "alarm",
            Some(device_id),
            Some(&m.device_id),
            text,
            data.as_ref(),
        )
        .await;
        // The business answer the standard asks for (gb28181.md §3 "Alarm").
        let body = manscdp::response_ok("Alarm", m.sn, &m.device_id);
        if let Err(e) = self.send_message(device_id, body).await {
            tracing::warn!(device_id, error = %e, "cannot answer the alarm");
        }
    }

    async fn event(
        &self,
        kind: &'static str,
        device_id: Option<&str>,
        channel_id: Option<&str>,
        message: String,
        data: Option<&serde_json::Value>,
    ) {
        let mut notice = crate::webhooks::Notice::new(kind, message);
        notice.device_id = device_id.map(str::to_owned);
        notice.channel_id = channel_id.map(str::to_owned);
        notice.data = data.cloned();
        let _ = self.notices.send(notice.clone());
        // Earlier refused events go first, so the log keeps its order.
        if !lock(&self.unstored_events).is_empty() {
            self.retry_events().await;
        }
        let ev = notice.clone();
        let stored = self
            .store
            .call(move |c| {
                db::insert_event(
                    c,
                    &ev.kind,
                    ev.device_id.as_deref(),
                    ev.channel_id.as_deref(),
                    &ev.message,
                    ev.data.as_ref(),
                )
            })
            .await;
        if let Err(e) = stored {
            tracing::warn!(kind, error = %e, "cannot store event; kept in memory and retried");
            let mut q = lock(&self.unstored_events);
            if q.len() >= MAX_UNSTORED_EVENTS {
                q.pop_front();
            }
            q.push_back(notice);
        }
    }

    // -----------------------------------------------------------------------
    // Requests to devices
    // -----------------------------------------------------------------------

    fn local_ip_for(&self, peer: IpAddr) -> IpAddr {
        if let Some(ip) = self.config.public_ip {
            return ip;
        }
        let bound = self.endpoint.local_addr().ip();
        if !bound.is_unspecified() {
            return bound;
        }
        if let Some(ip) = lock(&self.local_ips).get(&peer) {
            return *ip;
        }
        // The address the kernel would send from: connect a UDP socket (no
        // packet is sent) and read its local address.
        let any: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let ip = std::net::UdpSocket::bind(any)
            .and_then(|s| s.connect((peer, 9)).map(|()| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip())
            .unwrap_or(bound);
        lock(&self.local_ips).insert(peer, ip);
        ip
    }

    fn device_target(&self, device_id: &str) -> Result<(Peer, Charset), GbError> {
        let inner = lock(&self.inner);
        let d = inner
            .devices
            .get(device_id)
            .ok_or_else(|| GbError::UnknownDevice(device_id.to_owned()))?;
        if !d.registered(Instant::now()) || !d.online {
            return Err(GbError::Offline(device_id.to_owned()));
        }
        Ok((d.peer, d.reply_charset()))
    }

    /// An out-of-dialog or in-dialog request to a device.
    #[allow(clippy::too_many_arguments)]
    fn build_request(
        &self,
        method: rsip::Method,
        device_id: &str,
        peer: Peer,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        cseq: u32,
        extra: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> rsip::Request {
        let s = self.settings();
        let local_ip = self.local_ip_for(peer.addr.ip());
        let port = self.endpoint.local_addr().port();
        let local = SocketAddr::new(local_ip, port);
        let proto = match peer.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        let uri_text = format!("sip:{device_id}@{}", peer.addr);
        let uri = rsip::Uri::try_from(uri_text.as_str()).unwrap_or_default();
        let mut h = rsip::Headers::default();
        let mut push = |n: &str, v: String| h.push(rsip::Header::Other(n.into(), v));
        push(
            "Via",
            format!(
                "SIP/2.0/{proto} {local};rport;branch=z9hG4bK{}",
                random_token(10)
            ),
        );
        push(
            "From",
            format!("<sip:{}@{}>;tag={from_tag}", s.platform_id, s.domain),
        );
        push(
            "To",
            match to_tag {
                Some(t) => format!("<sip:{device_id}@{}>;tag={t}", s.domain),
                None => format!("<sip:{device_id}@{}>", s.domain),
            },
        );
        push("Call-ID", call_id.to_owned());
        push("CSeq", format!("{cseq} {method}"));
        push("Max-Forwards", "70".into());
        push("Contact", format!("<sip:{}@{local}>", s.platform_id));
        push(
            "User-Agent",
            concat!("camgate/", env!("CARGO_PKG_VERSION")).into(),
        );
        for (n, v) in extra {
            push(n, v.clone());
        }
        if body.is_some()
            && !extra
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
        {
            push("Content-Type", "Application/MANSCDP+xml".into());
        }
        rsip::Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: h,
            body: body.unwrap_or_default(),
        }
    }

    /// Sends a request to a device and waits for its final response; SIP
    /// failures carry the device id.
    async fn request_to(
        &self,
        device_id: &str,
        peer: Peer,
        req: rsip::Request,
    ) -> Result<rsip::Response, GbError> {
        self.endpoint
            .request(peer, req)
            .await
            .map_err(|source| GbError::Sip {
                device_id: device_id.to_owned(),
                source,
            })
    }

    /// Sends a MANSCDP MESSAGE (body written in UTF-8, sent in the device's
    /// charset) and waits for the SIP final response.
    async fn send_message(&self, device_id: &str, xml: String) -> Result<u16, GbError> {
        let (peer, charset) = self.device_target(device_id)?;
        let body = manscdp::encode_body(&xml, charset);
        let call_id = format!("{}@camgate", random_token(10));
        let req = self.build_request(
            rsip::Method::Message,
            device_id,
            peer,
            &call_id,
            &random_token(6),
            None,
            1,
            &[],
            Some(body),
        );
        let resp = self.request_to(device_id, peer, req).await?;
        Ok(resp.status_code.code())
    }

    /// Sends a Query and waits for the device's Response with the same SN
    /// (gb28181.md §3: matched on device, CmdType, SN).
    pub async fn query(
        &self,
        device_id: &str,
        cmd_type: &str,
        fields: &[(&str, &str)],
    ) -> Result<Answer, GbError> {
        self.query_for(device_id, device_id, cmd_type, fields).await
    }

    /// [`Platform::query`] about `target_id` (a channel of the device, or
    /// the device itself), sent to the device.
    pub async fn query_for(
        &self,
        device_id: &str,
        target_id: &str,
        cmd_type: &str,
        fields: &[(&str, &str)],
    ) -> Result<Answer, GbError> {
        self.device_target(device_id)?;
        let sn = self.next_sn();
        let cmd = CmdType::from_name(cmd_type);
        let key = (device_id.to_owned(), cmd.as_str().to_ascii_lowercase(), sn);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(key.clone(), tx);
        let result = self
            .query_inner(device_id, target_id, &cmd, sn, fields, rx)
            .await;
        lock(&self.waiters).remove(&key);
        result
    }

    async fn query_inner(
        &self,
        device_id: &str,
        target_id: &str,
        cmd: &CmdType,
        sn: u64,
        fields: &[(&str, &str)],
        mut rx: oneshot::Receiver<Answer>,
    ) -> Result<Answer, GbError> {
        let xml = manscdp::query_with(cmd.as_str(), sn, target_id, fields);
        let code = self.send_message(device_id, xml).await?;
        if !(200..300).contains(&code) {
            return Err(GbError::Rejected {
                device_id: device_id.to_owned(),
                cmd: cmd.to_string(),
                code,
            });
        }
        let no_answer = |secs| GbError::NoAnswer {
            device_id: device_id.to_owned(),
            cmd: cmd.to_string(),
            secs,
        };
        let deadline = tokio::time::Instant::now() + self.config.query_timeout;
        let waited = self.config.query_timeout.as_secs();
        match tokio::time::timeout_at(deadline, &mut rx).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(_)) => Err(no_answer(waited)),
            Err(_) if *cmd == CmdType::Catalog || *cmd == CmdType::RecordInfo => {
                // A long answer still arriving: wait for the assembler to
                // finish it (complete, or idle timeout), not a fixed time.
                let arriving = {
                    let inner = lock(&self.inner);
                    inner.catalogs.has_session(device_id, sn)
                        || inner.records.has_session(device_id, sn)
                };
                if !arriving {
                    return Err(no_answer(waited));
                }
                match tokio::time::timeout(Duration::from_secs(600), &mut rx).await {
                    Ok(Ok(a)) => Ok(a),
                    _ => Err(no_answer(600)),
                }
            }
            Err(_) => Err(no_answer(waited)),
        }
    }

    /// Catalog query → DeviceInfo → catalog subscription, once per new
    /// registration.
    fn start_sync(self: &Arc<Self>, device_id: &str) {
        if !lock(&self.inner).syncing.insert(device_id.to_owned()) {
            return;
        }
        let this = self.clone();
        let id = device_id.to_owned();
        tokio::spawn(async move {
            match this.query(&id, "Catalog", &[]).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(device_id = id, error = %e, "catalog query after registration failed")
                }
            }
            match this.query(&id, "DeviceInfo", &[]).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::info!(device_id = id, error = %e, "DeviceInfo query after registration failed")
                }
            }
            if let Err(e) = this.subscribe(&id, SubKind::Catalog).await {
                tracing::info!(device_id = id, error = %e, "catalog subscription not accepted; changes arrive only with refreshes");
            }
            // Alarms come as MESSAGEs from every device; the subscription
            // is for those that only send them to subscribers.
            if let Err(e) = this.subscribe(&id, SubKind::Alarm).await {
                tracing::info!(device_id = id, error = %e, "alarm subscription not accepted; alarms arrive only as MESSAGEs");
            }
            lock(&this.inner).syncing.remove(&id);
        });
    }

    /// SUBSCRIBE Event: Catalog or Alarm (gb28181.md §3 "Subscription"), or
    /// its refresh in the same dialog.
    async fn subscribe(&self, device_id: &str, kind: SubKind) -> Result<(), GbError> {
        let (peer, charset) = self.device_target(device_id)?;
        let sn = self.next_sn();
        let existing = {
            let inner = lock(&self.inner);
            match kind {
                SubKind::Catalog => &inner.subscriptions,
                SubKind::Alarm => &inner.alarm_subscriptions,
            }
            .get(device_id)
            .map(|s| {
                (
                    s.call_id.clone(),
                    s.from_tag.clone(),
                    s.to_tag.clone(),
                    s.cseq + 1,
                    s.event_id,
                    s.peer,
                )
            })
        };
        let (call_id, from_tag, to_tag, cseq, event_id, peer) =
            existing.filter(|e| e.5 == peer).unwrap_or_else(|| {
                (
                    format!("{}@camgate", random_token(10)),
                    random_token(6),
                    None,
                    1,
                    self.counter.fetch_add(1, Ordering::Relaxed),
                    peer,
                )
            });
        let expires = self.config.subscribe_expires;
        let body = manscdp::encode_body(&kind.body(sn, device_id), charset);
        let req = self.build_request(
            rsip::Method::Subscribe,
            device_id,
            peer,
            &call_id,
            &from_tag,
            to_tag.as_deref(),
            cseq,
            &[
                ("Event", format!("{};id={event_id}", kind.name())),
                ("Expires", expires.to_string()),
            ],
            Some(body),
        );
        let resp = self.request_to(device_id, peer, req).await?;
        let code = resp.status_code.code();
        if !(200..300).contains(&code) {
            let mut inner = lock(&self.inner);
            match kind {
                SubKind::Catalog => inner.subscriptions.remove(device_id),
                SubKind::Alarm => inner.alarm_subscriptions.remove(device_id),
            };
            return Err(GbError::Rejected {
                device_id: device_id.to_owned(),
                cmd: format!("SUBSCRIBE {}", kind.name()),
                code,
            });
        }
        let granted = msg::header_value(&resp.headers, "Expires")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(expires)
            // RFC 6665 §4.2.1.1: a notifier may shorten the period, never
            // lengthen it; some devices answer a fixed value.
            .min(expires)
            .max(10);
        let to_tag = msg::header_value(&resp.headers, "To")
            .and_then(|t| msg::param(&t, "tag").map(str::to_owned))
            .or(to_tag);
        // Refresh at 80 % of the period.
        let refresh_at = Instant::now() + Duration::from_secs(u64::from(granted) * 4 / 5);
        let mut inner = lock(&self.inner);
        match kind {
            SubKind::Catalog => &mut inner.subscriptions,
            SubKind::Alarm => &mut inner.alarm_subscriptions,
        }
        .insert(
            device_id.to_owned(),
            Subscription {
                peer,
                call_id,
                from_tag,
                to_tag,
                cseq,
                event_id,
                refresh_at,
            },
        );
        drop(inner);
        tracing::info!(
            device_id,
            subscription = kind.name(),
            expires = granted,
            refresh = cseq > 1,
            "subscription active"
        );
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------------

    async fn tick_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = Instant::now();
        let mut last_retry = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.tick(Instant::now()).await;
            if last_flush.elapsed() >= Duration::from_secs(30) {
                last_flush = Instant::now();
                self.flush_keepalives().await;
            }
            if last_retry.elapsed() >= Duration::from_secs(2) {
                last_retry = Instant::now();
                self.retry_events().await;
            }
        }
    }

    async fn tick(self: &Arc<Self>, now: Instant) {
        let s = self.settings();
        let silence = Duration::from_secs(
            u64::from(s.keepalive_interval_secs.max(1))
                * u64::from(s.keepalive_timeout_count.max(1)),
        );
        let mut went_offline = Vec::new();
        let (timed_out, records_timed_out, refresh) = {
            let mut inner = lock(&self.inner);
            for (id, d) in inner.devices.iter_mut() {
                if !d.online {
                    continue;
                }
                if !d.registered(now) {
                    d.online = false;
                    d.registered_until = None;
                    went_offline.push((
                        id.clone(),
                        true,
                        "registration expired without a refresh".to_owned(),
                    ));
                } else if now.duration_since(d.last_seen) >= silence {
                    d.online = false;
                    went_offline.push((
                        id.clone(),
                        false,
                        format!("no keepalive for {} s", silence.as_secs()),
                    ));
                }
            }
            for (id, ..) in &went_offline {
                inner.subscriptions.remove(id);
                inner.alarm_subscriptions.remove(id);
            }
            inner.registrar.prune(now);
            let timed_out = inner.catalogs.poll_timeouts(now);
            let records_timed_out = inner.records.poll_timeouts(now);
            let mut refresh: Vec<(String, SubKind)> = Vec::new();
            let inner = &mut *inner;
            for (kind, map) in [
                (SubKind::Catalog, &mut inner.subscriptions),
                (SubKind::Alarm, &mut inner.alarm_subscriptions),
            ] {
                for (id, s) in map.iter_mut() {
                    if s.refresh_at <= now {
                        // Not again until this refresh has had its chance.
                        s.refresh_at = now + Duration::from_secs(60);
                        refresh.push((id.clone(), kind));
                    }
                }
            }
            (timed_out, records_timed_out, refresh)
        };
        for (id, expired, why) in went_offline {
            tracing::warn!(device_id = id, reason = why, "device offline");
            self.online_changed(&id, false, expired, why).await;
        }
        for a in timed_out {
            self.catalog_done(a).await;
        }
        for a in records_timed_out {
            self.records_done(a);
        }
        for (id, kind) in refresh {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.subscribe(&id, kind).await {
                    tracing::warn!(device_id = id, subscription = kind.name(), error = %e, "subscription refresh failed");
                    let mut inner = lock(&this.inner);
                    match kind {
                        SubKind::Catalog => inner.subscriptions.remove(&id),
                        SubKind::Alarm => inner.alarm_subscriptions.remove(&id),
                    };
                }
            });
        }
    }

    /// Writes the keepalive times and addresses gathered since the last flush.
    pub async fn flush_keepalives(&self) {
        let batch: Vec<(String, i64, String, String)> = {
            let mut inner = lock(&self.inner);
            let dirty: Vec<String> = inner.dirty.drain().collect();
            dirty
                .into_iter()
                .filter_map(|id| {
                    let d = inner.devices.get(&id)?;
                    Some((
                        id,
                        d.last_seen_unix,
                        d.peer.addr.to_string(),
                        transport_name(d.peer.transport).to_owned(),
                    ))
                })
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        let ids: Vec<String> = batch.iter().map(|b| b.0.clone()).collect();
        if let Err(e) = self.store.call(move |c| db::touch_devices(c, &batch)).await {
            tracing::warn!(devices = n, error = %e, "cannot store keepalive times; kept in memory and retried");
            lock(&self.inner).dirty.extend(ids);
        }
    }

    /// Stores events that could not be written (full or read-only disk),
    /// oldest first; stops at the first failure.
    async fn retry_events(&self) {
        loop {
            let Some(ev) = lock(&self.unstored_events).front().cloned() else {
                return;
            };
            let e2 = ev.clone();
            let stored = self
                .store
                .call(move |c| {
                    db::insert_event(
                        c,
                        &e2.kind,
                        e2.device_id.as_deref(),
                        e2.channel_id.as_deref(),
                        &e2.message,
                        e2.data.as_ref(),
                    )
                })
                .await;
            match stored {
                Ok(_) => {
                    lock(&self.unstored_events).pop_front();
                    tracing::info!(kind = ev.kind, "event stored on retry");
                }
                Err(_) => return,
            }
        }
    }

    /// Where a registered, online device is.
    pub fn device_peer(&self, device_id: &str) -> Result<Peer, GbError> {
        self.device_target(device_id).map(|(p, _)| p)
    }

    /// The local address that routes to `ip` (or the configured public one).
    pub fn local_ip_towards(&self, ip: IpAddr) -> IpAddr {
        self.local_ip_for(ip)
    }

    /// Whether RTP from this device must carry the answered SSRC (a
    /// per-device switch; true when unknown).
    pub async fn ssrc_check(&self, device_id: &str) -> bool {
        let id = device_id.to_owned();
        self.store
            .call(move |c| db::get_device(c, &id))
            .await
            .ok()
            .flatten()
            .is_none_or(|d| d.ssrc_check)
    }

    /// Whether the device is known and lists `channel_id` in its catalog (or
    /// is asked for itself: single-channel IPCs are their own channel).
    pub async fn has_channel(&self, device_id: &str, channel_id: &str) -> Result<bool, GbError> {
        if !lock(&self.inner).devices.contains_key(device_id) {
            return Err(GbError::UnknownDevice(device_id.to_owned()));
        }
        if device_id == channel_id {
            return Ok(true);
        }
        let (d, c) = (device_id.to_owned(), channel_id.to_owned());
        Ok(self
            .store
            .call(move |conn| db::get_channel(conn, &d, &c))
            .await?
            .is_some())
    }

    /// Runtime view of a device for the API: (online, registered, peer).
    pub fn runtime(&self, device_id: &str) -> Option<DeviceRuntime> {
        let now = Instant::now();
        let inner = lock(&self.inner);
        let d = inner.devices.get(device_id)?;
        Some(DeviceRuntime {
            online: d.online && d.registered(now),
            registered: d.registered(now),
            address: d.peer.addr.to_string(),
            transport: transport_name(d.peer.transport),
            last_seen_unix: d.last_seen_unix,
            subscribed: inner.subscriptions.contains_key(device_id),
        })
    }
}

/// What the API shows of a device's live state.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceRuntime {
    pub online: bool,
    pub registered: bool,
    pub address: String,
    pub transport: &'static str,
    pub last_seen_unix: i64,
    pub subscribed: bool,
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

fn stored_peer(d: &db::DeviceRecord) -> Option<Peer> {
    let addr: SocketAddr = d.address.as_deref()?.parse().ok()?;
    let transport = match d.transport.as_deref() {
        Some("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    Some(Peer { transport, addr })
}
