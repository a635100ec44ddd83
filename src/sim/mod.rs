//! `camgate sim`: GB28181 devices for load tests, demos and as the test peer
//! for what sipp cannot do.
//!
//! N devices × M channels register to a platform (digest MD5, with or
//! without `qop=auth`), refresh, send keepalives, answer Catalog (several
//! MESSAGEs, each after the 200 of the previous), DeviceInfo, DeviceStatus
//! and RecordInfo queries, accept SUBSCRIBE and log DeviceControl
//! (gb28181.md §2, §3). INVITEs for a channel are answered with PS over RTP
//! (UDP, or RFC 4571 over TCP in either direction; §5, §6) made by the
//! project's own PS muxer from an elementary-stream file, paced in real time
//! and shared by all sessions ([`media`]).
//!
//! Modules:
//! - [`ids`], [`auth`], [`xml`], [`offer`]: sans-IO pieces (ids, digest
//!   answers, MANSCDP bodies, SDP offer/answer);
//! - [`link`]: SIP over the shared UDP endpoint or per-device TCP connections;
//! - [`device`]: registration, keepalive, queries; [`call`]: INVITE dialogs;
//! - [`media`]: the shared pacer/muxer and the per-session senders.
//!
//! Log lines tests and operators follow: `sim ready devices=N sip=<addr>`,
//! `sim invite …`, `sim media started …`, `sim media stopped …`, `sim bye …`,
//! `sim device_control …`.

pub mod auth;
mod call;
mod device;
pub mod ids;
pub mod link;
pub mod media;
pub mod offer;
pub mod xml;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::call::Call;
use self::device::Device;
use self::link::Incoming;
pub use self::media::{AudioInput, PsQuirks};
use crate::codec::es::EsError;
use crate::egress::ps::PsMuxError;
use crate::gb::manscdp::Charset;
use crate::gb::media::{SessionKind, SsrcPool};
use crate::sip::endpoint::{EndpointConfig, SipEndpoint, SipError};
use crate::sip::msg;

/// `User-Agent` of the simulated devices.
pub const USER_AGENT: &str = concat!("camgate-sim/", env!("CARGO_PKG_VERSION"));
/// Requests handled at once; more wait in the inbound queue.
const MAX_HANDLERS: usize = 1024;
/// Requests waiting to be handled; more are dropped (the platform retries
/// over UDP).
const INBOUND_QUEUE: usize = 4096;
/// Registrations in flight at once (start-up of many devices).
const REGISTER_SLOTS: usize = 64;
/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// SIP transport of the devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
}

impl SipTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
        }
    }
}

impl std::str::FromStr for SipTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(SipTransport::Udp),
            "tcp" => Ok(SipTransport::Tcp),
            _ => Err("expected udp or tcp".into()),
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The platform's SIP address.
    pub platform: SocketAddr,
    pub transport: SipTransport,
    pub devices: usize,
    pub channels: usize,
    /// 14 digits; device ids are the prefix and a 6-digit counter.
    pub device_prefix: String,
    pub password: String,
    pub platform_id: String,
    /// SIP domain (digest realm), 10 digits.
    pub domain: String,
    pub keepalive: Duration,
    /// Registration period asked for, seconds.
    pub expires: u32,
    /// H.264 or H.265 Annex B elementary stream.
    pub input: PathBuf,
    pub audio: Option<AudioInput>,
    pub fps: u32,
    /// Local address for SIP over UDP (port 0: any) and the IP of media
    /// sockets. An unspecified IP means the one that routes to the platform.
    pub listen: SocketAddr,
    pub quirks: PsQuirks,
    /// Answer `y=0000000000` whatever was offered (a real IPC's habit).
    pub answer_zero_ssrc: bool,
    /// Charset of our MANSCDP bodies.
    pub charset: Charset,
    /// Catalog items per MESSAGE.
    pub catalog_batch: usize,
}

impl SimConfig {
    /// Defaults: 1 device × 1 channel over UDP, ids `34020000001320000001`,
    /// platform `34020000002000000001`, domain `3402000000`, keepalive 60 s,
    /// Expires 3600, 25 fps, GB18030 bodies, 2 catalog items per MESSAGE.
    pub fn new(platform: SocketAddr, input: PathBuf) -> Self {
        Self {
            platform,
            transport: SipTransport::Udp,
            devices: 1,
            channels: 1,
            device_prefix: "34020000001320".into(),
            password: "12345678".into(),
            platform_id: "34020000002000000001".into(),
            domain: "3402000000".into(),
            keepalive: Duration::from_secs(60),
            expires: 3600,
            input,
            audio: None,
            fps: 25,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            quirks: PsQuirks::default(),
            answer_zero_ssrc: false,
            charset: Charset::Gb18030,
            catalog_batch: 2,
        }
    }

    fn check(&self) -> Result<(), SimError> {
        let bad = |what, reason: &str| {
            Err(SimError::Config {
                what,
                reason: reason.to_owned(),
            })
        };
        if !crate::gb::platform::valid_device_id(&self.platform_id) {
            return bad("--platform-id", "1 to 64 letters or digits expected");
        }
        if self.domain.is_empty()
            || self.domain.len() > 64
            || !self
                .domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return bad("--domain", "a SIP domain such as 3402000000 expected");
        }
        if self.password.is_empty() || self.password.len() > 128 {
            return bad("--password", "1 to 128 characters expected");
        }
        if !(1..=3600).contains(&self.keepalive.as_secs()) {
            return bad("--keepalive-secs", "1..=3600 expected");
        }
        if !(10..=86_400).contains(&self.expires) {
            return bad("--expires", "10..=86400 expected");
        }
        if !(1..=120).contains(&self.fps) {
            return bad("--fps", "1..=120 expected");
        }
        if !(1..=100).contains(&self.catalog_batch) {
            return bad("--catalog-batch", "1..=100 expected");
        }
        Ok(())
    }
}

/// Why the simulator cannot run, or what went wrong for one device.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid {what}: {reason}")]
    Config { what: &'static str, reason: String },
    #[error("cannot use the input {}", path.display())]
    Input {
        path: PathBuf,
        #[source]
        source: EsError,
    },
    #[error("invalid PS muxer options")]
    Mux {
        #[source]
        source: PsMuxError,
    },
    #[error("cannot start SIP on {addr}")]
    Endpoint {
        addr: SocketAddr,
        #[source]
        source: SipError,
    },
    #[error("device {device_id}: cannot connect to the platform at {peer}: {source}")]
    Connect {
        device_id: String,
        peer: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("device {device_id}: {method} got no final response: {source}")]
    Sip {
        device_id: String,
        method: &'static str,
        #[source]
        source: link::LinkError,
    },
    #[error("device {device_id}: {method} refused with SIP {code}")]
    Rejected {
        device_id: String,
        method: &'static str,
        code: u16,
    },
    #[error("device {device_id}: cannot authenticate: {reason}")]
    Auth { device_id: String, reason: String },
    #[error("reading the input failed: {0}")]
    Task(String),
}

/// Where a request's Request-URI (or To) user points.
#[derive(Clone, Copy, Debug)]
enum Target {
    Device(usize),
    Channel(usize, usize),
}

/// State shared by the devices, calls and the dispatcher.
pub(crate) struct Shared {
    cfg: SimConfig,
    /// Our IP in Via/Contact/SDP and for media sockets.
    local_ip: IpAddr,
    /// The shared UDP endpoint (UDP mode).
    endpoint: Option<Arc<SipEndpoint>>,
    devices: Vec<Arc<Device>>,
    index: HashMap<String, Target>,
    calls: Mutex<HashMap<String, Arc<Call>>>,
    ssrcs: Mutex<SsrcPool>,
    media: Arc<media::MediaSource>,
    /// Requests from TCP connections (UDP ones are forwarded here too).
    inbound: mpsc::Sender<Incoming>,
    /// Devices, sessions and the pacer stop on this; SIP keeps running.
    stopping: CancellationToken,
    /// SIP sockets and connections stop on this, last.
    io: CancellationToken,
    registered: AtomicUsize,
    ready: watch::Sender<bool>,
    sip_addr: Mutex<Option<SocketAddr>>,
    sn: AtomicU64,
    utc_offset: i64,
    register_slots: Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random hex token for tags, branches and Call-IDs.
fn token(bytes: usize) -> String {
    crate::util::random_hex(bytes).unwrap_or_else(|_| {
        // Tags need uniqueness, not secrecy: a time-based value will do.
        format!(
            "{:x}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        )
    })
}

/// The local IP the kernel would use towards `peer` (no packet is sent).
fn route_ip(peer: IpAddr) -> IpAddr {
    let any: SocketAddr = if peer.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    std::net::UdpSocket::bind(any)
        .and_then(|s| s.connect((peer, 9)).map(|()| s))
        .and_then(|s| s.local_addr())
        .map_or(peer, |a| a.ip())
}

impl Shared {
    /// Our UDP SIP address for Via/Contact.
    fn sip_local(&self) -> SocketAddr {
        let port = self.endpoint.as_ref().map_or(0, |e| e.local_addr().port());
        SocketAddr::new(self.local_ip, port)
    }

    fn note_sip_addr(&self, addr: SocketAddr) {
        lock(&self.sip_addr).get_or_insert(addr);
    }

    fn next_sn(&self) -> u64 {
        self.sn.fetch_add(1, Ordering::Relaxed)
    }

    /// A device registered for the first time; all of them: `sim ready`.
    fn note_registered(&self) {
        let n = self.registered.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.devices.len() {
            let sip = lock(&self.sip_addr)
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(devices = n, sip = %sip, transport = %self.cfg.transport.as_str(), "sim ready");
            self.ready.send_replace(true);
        }
    }

    fn device_by_id(&self, id: &str) -> Option<Arc<Device>> {
        self.devices.iter().find(|d| d.id == id).cloned()
    }

    fn call(&self, call_id: &str) -> Option<Arc<Call>> {
        lock(&self.calls).get(call_id).cloned()
    }

    fn insert_call(&self, call: Arc<Call>) {
        lock(&self.calls).insert(call.call_id.clone(), call);
    }

    fn remove_call(&self, call_id: &str) {
        lock(&self.calls).remove(call_id);
    }

    /// (all sessions, sessions of `channel_id`).
    fn call_counts(&self, channel_id: &str) -> (usize, usize) {
        let calls = lock(&self.calls);
        let on = calls
            .values()
            .filter(|c| c.channel_id == channel_id)
            .count();
        (calls.len(), on)
    }

    fn calls_of(&self, device_id: &str) -> usize {
        lock(&self.calls)
            .values()
            .filter(|c| c.device_id == device_id)
            .count()
    }

    fn allocate_ssrc(&self) -> String {
        lock(&self.ssrcs)
            .allocate(SessionKind::Play)
            .unwrap_or_else(|| "0000000001".into())
    }

    fn release_ssrc(&self, v: u32) {
        lock(&self.ssrcs).release(v);
    }

    /// Which device/channel a request is for: the Request-URI user, else
    /// the To user.
    fn target(&self, req: &rsip::Request) -> Option<(Arc<Device>, Option<usize>)> {
        let uri = req.uri.to_string();
        let to = msg::header_value(&req.headers, "To").unwrap_or_default();
        let t = msg::uri_user(&uri)
            .and_then(|u| self.index.get(u))
            .or_else(|| msg::uri_user(&to).and_then(|u| self.index.get(u)))?;
        match *t {
            Target::Device(d) => Some((self.devices.get(d)?.clone(), None)),
            Target::Channel(d, c) => Some((self.devices.get(d)?.clone(), Some(c))),
        }
    }

    async fn handle(self: Arc<Self>, inc: Incoming) {
        let req = inc.request();
        let method = req.method.to_string();
        match method.as_str() {
            "ACK" => return call::on_ack(&self, &inc),
            "BYE" => return call::on_bye(&self, &inc).await,
            "CANCEL" => return call::on_cancel(&self, &inc).await,
            "INFO" => return call::on_info(&self, &inc).await,
            _ => {}
        }
        let Some((dev, channel)) = self.target(req) else {
            tracing::info!(method, peer = %inc.source(), uri = %req.uri, "sim: request for no simulated device: 404");
            inc.respond(inc.response(404, Some(&token(6)))).await;
            return;
        };
        match method.as_str() {
            "MESSAGE" => device::on_message(&self, &dev, &inc).await,
            "SUBSCRIBE" => device::on_subscribe(&dev, &inc).await,
            "INVITE" => {
                // A single-channel IPC is also asked by its device id.
                let Some(channel_id) = dev.channels.get(channel.unwrap_or(0)).cloned() else {
                    inc.respond(inc.response(404, Some(&token(6)))).await;
                    return;
                };
                call::on_invite(&self, &dev, &channel_id, inc).await;
            }
            "NOTIFY" | "INFO" | "OPTIONS" => {
                inc.respond(inc.response(200, Some(&token(6)))).await;
            }
            _ => {
                let mut r = inc.response(405, Some(&token(6)));
                r.headers.push(rsip::Header::Other(
                    "Allow".into(),
                    "INVITE, ACK, BYE, CANCEL, MESSAGE, SUBSCRIBE, NOTIFY, INFO, OPTIONS".into(),
                ));
                inc.respond(r).await;
            }
        }
    }
}

async fn dispatch(sh: Arc<Shared>, mut rx: mpsc::Receiver<Incoming>) {
    let slots = Arc::new(Semaphore::new(MAX_HANDLERS));
    loop {
        let inc = tokio::select! {
            () = sh.io.cancelled() => break,
            r = rx.recv() => match r { Some(i) => i, None => break },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let s = sh.clone();
        tokio::spawn(async move {
            s.handle(inc).await;
            drop(permit);
        });
    }
}

/// A running simulator.
pub struct Sim {
    shared: Arc<Shared>,
    devices: Vec<JoinHandle<()>>,
}

impl Sim {
    /// Loads the input, starts SIP and the devices. Returns once everything
    /// runs; [`Sim::wait_ready`] tells when every device has registered.
    pub async fn start(cfg: SimConfig) -> Result<Self, SimError> {
        cfg.check()?;
        let ids = ids::make_ids(&cfg.device_prefix, cfg.devices, cfg.channels)?;
        let local_ip = if cfg.listen.ip().is_unspecified() {
            route_ip(cfg.platform.ip())
        } else {
            cfg.listen.ip()
        };
        let stopping = CancellationToken::new();
        let io = CancellationToken::new();
        let media = {
            let (input, audio, fps, quirks, stop) = (
                cfg.input.clone(),
                cfg.audio.clone(),
                cfg.fps,
                cfg.quirks,
                stopping.clone(),
            );
            tokio::task::spawn_blocking(move || {
                media::MediaSource::load(&input, audio.as_ref(), fps, quirks, stop)
            })
            .await
            .map_err(|e| SimError::Task(e.to_string()))??
        };
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let (endpoint, udp_rx) = match cfg.transport {
            SipTransport::Udp => {
                let listen = SocketAddr::new(local_ip, cfg.listen.port());
                let (ep, rx) = SipEndpoint::start(
                    EndpointConfig {
                        listen,
                        limits: crate::sip::Limits::default(),
                        timers: crate::sip::transaction::Timers::default(),
                        max_tcp_connections: 16,
                    },
                    io.clone(),
                )
                .await
                .map_err(|source| SimError::Endpoint {
                    addr: listen,
                    source,
                })?;
                (Some(ep), Some(rx))
            }
            SipTransport::Tcp => (None, None),
        };
        let mut index = HashMap::new();
        let devices: Vec<Arc<Device>> = ids
            .into_iter()
            .enumerate()
            .map(|(d, ids)| {
                index.insert(ids.device_id.clone(), Target::Device(d));
                for (c, ch) in ids.channel_ids.iter().enumerate() {
                    index.insert(ch.clone(), Target::Channel(d, c));
                }
                Arc::new(Device::new(d, ids))
            })
            .collect();
        let (ready, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            ssrcs: Mutex::new(SsrcPool::new(&cfg.domain)),
            cfg,
            local_ip,
            endpoint: endpoint.clone(),
            devices,
            index,
            calls: Mutex::default(),
            media: Arc::new(media),
            inbound: tx.clone(),
            stopping,
            io: io.clone(),
            registered: AtomicUsize::new(0),
            ready,
            sip_addr: Mutex::new(None),
            sn: AtomicU64::new(1),
            utc_offset: crate::util::local_utc_offset_secs(SystemTime::now()),
            register_slots: Semaphore::new(REGISTER_SLOTS),
        });
        if let (Some(ep), Some(mut udp_rx)) = (endpoint, udp_rx) {
            shared.note_sip_addr(shared.sip_local());
            let local = shared.sip_local();
            tokio::spawn(async move {
                while let Some(inbound) = udp_rx.recv().await {
                    let inc = Incoming::Udp {
                        endpoint: ep.clone(),
                        local,
                        inbound,
                    };
                    if tx.try_send(inc).is_err() {
                        tracing::warn!("simulator request queue full: request dropped");
                    }
                }
            });
        }
        tokio::spawn(dispatch(shared.clone(), rx));
        let handles = shared
            .devices
            .iter()
            .map(|d| tokio::spawn(device::run(shared.clone(), d.clone())))
            .collect();
        Ok(Self {
            shared,
            devices: handles,
        })
    }

    /// Our SIP address (UDP: the shared endpoint; TCP: the first device's
    /// connection, once open).
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        *lock(&self.shared.sip_addr)
    }

    /// Resolves when every device has registered once.
    pub async fn wait_ready(&self) {
        let mut rx = self.shared.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Device ids with their channel ids.
    pub fn devices(&self) -> Vec<(String, Vec<String>)> {
        self.shared
            .devices
            .iter()
            .map(|d| (d.id.clone(), d.channels.clone()))
            .collect()
    }

    /// Every device sends an alarm for its first channel (Notify/Alarm:
    /// video alarm, motion detection, priority 1; GB/T 28181-2016 A.2.5.3),
    /// as a camera does when it sees motion. `camgate sim` does this on
    /// SIGUSR1.
    pub async fn send_alarms(&self) {
        for dev in &self.shared.devices {
            let channel = dev
                .channels
                .first()
                .cloned()
                .unwrap_or_else(|| dev.id.clone());
            device::send_alarm(&self.shared, dev, &channel).await;
        }
    }

    /// Media sessions in progress.
    pub fn active_sessions(&self) -> usize {
        lock(&self.shared.calls).len()
    }

    /// Graceful stop: BYE for every session, Expires 0 for every device,
    /// then SIP closes. Bounded by [`STOP_TIMEOUT`].
    pub async fn stop(self) {
        tracing::info!("sim stopping: ending sessions and unregistering");
        self.shared.stopping.cancel();
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        for h in self.devices {
            if tokio::time::timeout_at(deadline, h).await.is_err() {
                tracing::warn!("sim stop timed out");
                break;
            }
        }
        while !lock(&self.shared.calls).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.io.cancel();
        tracing::info!("sim stopped");
    }
}
