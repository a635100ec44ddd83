//! Wiring: the parts of a running gateway and its start-up/shutdown order.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::egress::flv::FlvOutputs;
use crate::gb::Platform;
use crate::ingest::rtsp::{RtspSources, RtspTiming};
use crate::media::{FanoutConfig, Hub};
use crate::sip::endpoint::{EndpointConfig, SipEndpoint, SipError};
use crate::store::{MediaSettings, Store, StoreError, TokenRole, db};

pub struct App {
    /// Held while running: no second gateway or restore on this data dir.
    _lock: crate::store::ops::DataDirLock,
    pub config: Config,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub flv: FlvOutputs,
    pub hls: Arc<crate::egress::hls::output::HlsOutputs>,
    pub rtsp: RtspSources,
    pub webrtc: crate::egress::webrtc::WebRtcOutputs,
    pub gb: Arc<Platform>,
    pub gb_live: Arc<crate::gb::live::GbStreams>,
    pub ptz: Arc<crate::ptz::PtzService>,
    pub downloads: Arc<crate::egress::download::Downloads>,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Signs viewer URLs (`[viewer] signed_url_ttl_secs`); made once, kept
    /// in the database, never shown.
    viewer_key: Vec<u8>,
    media: Arc<RwLock<MediaSettings>>,
    /// CORS policy in force; replaced on SIGHUP.
    pub cors: crate::api::SharedCorsPolicy,
    pub shutdown: CancellationToken,
    /// The GB28181 media port (UDP and TCP), as bound.
    pub gb_media_port: u16,
    /// The HTTP address, once bound by `serve`.
    pub http_addr: std::sync::OnceLock<SocketAddr>,
    pub started: Instant,
    /// Where the RTSP server listens, once it does.
    rtsp_server_addr: std::sync::OnceLock<SocketAddr>,
    /// Failed web UI / API logins per client address.
    pub login_failures: std::sync::Mutex<crate::util::FailureLimiter>,
    /// CPU, memory and bandwidth of the box, sampled in the background.
    pub system: crate::ops::system::SystemSampler,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ops(#[from] crate::store::ops::OpsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sip(#[from] SipError),
    #[error(transparent)]
    Media(#[from] crate::ingest::media_server::MediaServerError),
    #[error(transparent)]
    RtspServer(#[from] crate::egress::rtsp::RtspServerError),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl App {
    /// Opens the database, starts SIP (UDP and TCP) and the GB28181 platform,
    /// and starts the stored sources.
    pub async fn start(mut config: Config) -> Result<Arc<Self>, AppError> {
        crate::ops::systemd::status("opening the database");
        let lock = crate::store::ops::DataDirLock::acquire(&config.data_dir)?;
        let store = Store::open_in_dir(&config.data_dir)?;
        // Ports and public address set from the web UI take effect now.
        if let Some(network) = store
            .call_sync(|c| db::get_setting::<crate::store::NetworkSettings>(c, db::NETWORK_KEY))?
        {
            for name in config.apply_network(&network) {
                tracing::warn!(
                    setting = name,
                    "the stored network setting is overridden by a command-line flag or environment variable"
                );
            }
        }
        ensure_admin_token(&store, config.admin_token.as_deref())?;
        let media = store
            .call_sync(|c| db::get_setting::<MediaSettings>(c, db::MEDIA_KEY))?
            .unwrap_or(MediaSettings {
                on_demand_grace_secs: config.on_demand_grace.as_secs(),
                start_timeout_secs: config.start_timeout.as_secs(),
            });
        let hub = Arc::new(Hub::new(FanoutConfig::default()));
        let rtsp = RtspSources::new(
            hub.clone(),
            RtspTiming {
                connect_timeout: config.rtsp_connect_timeout,
                backoff_min: config.rtsp_backoff_min,
                backoff_max: config.rtsp_backoff_max,
                ..RtspTiming::default()
            },
        );
        let shutdown = CancellationToken::new();
        crate::ops::systemd::status("starting SIP and GB28181 media");
        let (endpoint, inbound) = SipEndpoint::start(
            EndpointConfig {
                listen: config.sip_listen,
                limits: crate::sip::Limits::default(),
                timers: crate::sip::transaction::Timers::default(),
                max_tcp_connections: 4096,
            },
            shutdown.clone(),
        )
        .await?;
        let gb = Platform::start(
            endpoint,
            inbound,
            store.clone(),
            config.gb.clone(),
            shutdown.clone(),
        )
        .await?;
        let media_server = crate::ingest::media_server::MediaServer::start(
            config.rtp_listen,
            config.rtp_port_range,
            shutdown.clone(),
        )
        .await?;
        let webrtc_listen = config.webrtc.listen;
        let webrtc =
            crate::egress::webrtc::WebRtcOutputs::start(config.webrtc.clone(), shutdown.clone())
                .await
                .map_err(|source| AppError::Listen {
                    addr: webrtc_listen,
                    source,
                })?;
        let gb_media_port = media_server.udp_port();
        let grace_source = Arc::new(RwLock::new(media));
        let grace_read = grace_source.clone();
        let gb_live = crate::gb::live::GbStreams::new(
            hub.clone(),
            gb.clone(),
            media_server,
            config.live.clone(),
            Box::new(move || {
                Duration::from_secs(
                    grace_read
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .on_demand_grace_secs,
                )
            }),
        );
        let ptz = crate::ptz::PtzService::new(gb.clone(), store.clone());
        let downloads = crate::egress::download::Downloads::new(&config.data_dir);
        let viewer_key = store.call_sync(|c| {
            const KEY: &str = "viewer_url_key";
            if let Some(k) = db::get_setting::<String>(c, KEY)? {
                return Ok(k);
            }
            let k = crate::util::random_hex(32)
                .map_err(|e| StoreError::Worker(format!("no randomness from the OS: {e}")))?;
            db::put_setting(c, KEY, &k)?;
            Ok(k)
        })?;
        let webhooks = crate::webhooks::Webhooks::start(
            store.clone(),
            gb.notices(),
            hub.clone(),
            shutdown.clone(),
        );
        // Validated when the configuration was loaded.
        let cors = crate::api::CorsPolicy::new(&config.cors_allowed_origins).unwrap_or_default();
        let app = Arc::new(Self {
            cors: Arc::new(RwLock::new(Arc::new(cors))),
            _lock: lock,
            config,
            gb,
            gb_live,
            ptz,
            downloads,
            webhooks,
            viewer_key: viewer_key.into_bytes(),
            store,
            hub,
            flv: FlvOutputs::new(FanoutConfig::default()),
            hls: Arc::new(crate::egress::hls::output::HlsOutputs::new(
                crate::egress::hls::HlsConfig::default(),
            )),
            rtsp,
            webrtc,
            media: grace_source,
            gb_media_port,
            http_addr: std::sync::OnceLock::new(),
            shutdown,
            started: Instant::now(),
            login_failures: std::sync::Mutex::new(crate::util::FailureLimiter::new(
                crate::util::FailureLimits::default(),
            )),
            system: crate::ops::system::SystemSampler::default(),
            rtsp_server_addr: std::sync::OnceLock::new(),
        });
        let sources = app.store.call_sync(|c| db::list_sources(c))?;
        let grace = app.grace();
        for s in &sources {
            if let Err(e) = app.rtsp.apply(s, grace) {
                tracing::error!(stream = %s.name, error = %e, "stored source has an invalid URL; not started");
            }
        }
        tracing::info!(sources = sources.len(), "sources loaded");
        Ok(app)
    }

    /// The key that signs viewer URLs.
    pub fn viewer_key(&self) -> &[u8] {
        &self.viewer_key
    }

    /// The RTSP server's bound port; `None` while it is not running.
    pub fn rtsp_port(&self) -> Option<u16> {
        self.rtsp_server_addr.get().map(SocketAddr::port)
    }

    pub(crate) fn set_rtsp_server_addr(&self, addr: SocketAddr) {
        // Set once per run; a second start would be a wiring error, ignored.
        let _ = self.rtsp_server_addr.set(addr);
    }

    /// `systemctl status`'s one-line summary.
    pub fn status_line(&self) -> String {
        format!(
            "serving: HTTP {}, SIP {}, GB28181 media port {}, {} streams",
            self.http_addr.get().unwrap_or(&self.config.http_listen),
            self.gb.sip_addr(),
            self.gb_media_port,
            self.hub.list().len()
        )
    }

    pub fn media_settings(&self) -> MediaSettings {
        *self.media.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_media_settings(&self, m: MediaSettings) {
        *self.media.write().unwrap_or_else(|e| e.into_inner()) = m;
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.media_settings().on_demand_grace_secs)
    }

    pub fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.media_settings().start_timeout_secs.max(1))
    }

    /// The stream `id` from the hub, for any live output. A GB28181 channel's
    /// stream (`{deviceId}_{channelId}`) is made by its first viewer; an
    /// on-demand RTSP source is in the hub from the start. `None`: no such
    /// stream and none can be made.
    pub(crate) async fn find_stream(
        &self,
        id: &str,
    ) -> Result<Option<Arc<crate::media::Stream>>, StoreError> {
        if let Some(s) = self.hub.get(id) {
            return Ok(Some(s));
        }
        let Some((device_id, channel_id)) = crate::gb::live::split_stream_id(id) else {
            return Ok(None);
        };
        let (d, c) = (device_id.to_owned(), channel_id.to_owned());
        let transport = self
            .store
            .call(move |conn| db::get_channel(conn, &d, &c))
            .await?
            .and_then(|c| crate::gb::media::MediaTransport::parse(&c.media_transport))
            .unwrap_or_default();
        Ok(self
            .gb_live
            .ensure(device_id, channel_id, transport)
            .await
            .ok())
    }

    /// Samples the box's load every 2 s for the dashboard.
    fn spawn_system_sampler(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    () = self.shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let media = (
                    crate::media::MEDIA_BYTES_IN.load(std::sync::atomic::Ordering::Relaxed),
                    crate::media::MEDIA_BYTES_OUT.load(std::sync::atomic::Ordering::Relaxed),
                );
                // /proc reads are quick but blocking; keep them off the
                // async workers.
                let reading = tokio::task::spawn_blocking(move || {
                    crate::ops::system::Reading::from_proc(media)
                })
                .await
                .unwrap_or_default();
                self.system.update(reading, Instant::now());
            }
        });
    }

    /// Serves HTTP until `shutdown` is cancelled, then stops sources, closes
    /// streams and the database, each step bounded in time.
    pub async fn serve(self: Arc<Self>) -> Result<(), AppError> {
        let addr = self.config.http_listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })?;
        let local = listener.local_addr().map_err(AppError::Serve)?;
        if self.config.rtsp_server.enabled {
            crate::egress::rtsp::RtspServer::start(self.clone()).await?;
        }
        tracing::info!(http = %local, "camgate listening");
        let _ = self.http_addr.set(local);
        self.clone().spawn_system_sampler();
        // Every listener is bound now: SIP and media in `start`, HTTP above.
        crate::ops::systemd::notify(&[("READY", "1"), ("STATUS", &self.status_line())]);
        let router = crate::api::router(self.clone());
        let shutdown = self.shutdown.clone();
        // The client address is needed for login rate limits.
        let router = router.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            shutdown.cancelled().await;
        });
        let result = server.await.map_err(AppError::Serve);
        tracing::info!("HTTP server stopped; stopping sources");
        crate::ops::systemd::status("stopping: ending camera sessions");
        self.rtsp.shutdown(Duration::from_secs(5)).await;
        self.gb_live.stop_all();
        // Let the BYEs go out before the endpoint stops.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.gb.flush_keepalives().await;
        self.hub.close_all();
        crate::ops::systemd::status("stopping: closing the database");
        self.store.close()?;
        tracing::info!("shutdown complete");
        result
    }
}

/// Makes sure an admin can get in: the configured token is stored (hashed),
/// and an empty token table gets a fresh admin token, logged once.
pub fn ensure_admin_token(store: &Store, configured: Option<&str>) -> Result<(), StoreError> {
    store.call_sync(|c| {
        if let Some(token) = configured {
            db::insert_token(c, "admin (configured)", token, TokenRole::Admin)?;
            return Ok(());
        }
        if db::count_tokens(c)? == 0 {
            let token = db::generate_token()?;
            db::insert_token(c, "admin (first start)", &token, TokenRole::Admin)?;
            tracing::warn!(
                "created the first admin API token. It is shown only this once; keep it: {token}"
            );
        }
        Ok(())
    })
}
