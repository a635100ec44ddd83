//! RTSP cameras, pulled with retina.
//!
//! Each source has a runner task that connects while its stream is wanted (a
//! viewer is watching, or the source is always-on), reconnects with
//! exponential backoff after failures, and reports its state on the stream.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
    UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::codec::{Codec, nal};
use crate::media::{
    AudioTrack, DemandPolicy, Frame, FrameData, Hub, SourceState, Stream, TrackInfo, VideoTrack,
};
use crate::store::{SourceRecord, Transport as StoredTransport};

/// Timing of connection attempts.
#[derive(Clone, Copy, Debug)]
pub struct RtspTiming {
    /// Limit for DESCRIBE/SETUP/PLAY together.
    pub connect_timeout: Duration,
    /// A session with no frame for this long is treated as failed.
    pub media_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for RtspTiming {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            media_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// What a runner connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtspTarget {
    pub url: Url,
    pub username: Option<String>,
    pub password: Option<String>,
    pub transport: StoredTransport,
}

#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    #[error("{phase} {url}: {source}")]
    Retina {
        phase: &'static str,
        url: String,
        #[source]
        source: retina::Error,
    },
    #[error("{phase} {url}: timed out after {} s", timeout.as_secs())]
    Timeout {
        phase: &'static str,
        url: String,
        timeout: Duration,
    },
    #[error("{url}: no H.264/H.265 video or AAC/G.711 audio in the SDP")]
    NoUsableStream { url: String },
    #[error("{url}: no frame for {} s", timeout.as_secs())]
    NoMedia { url: String, timeout: Duration },
    #[error("{url}: the camera ended the session")]
    Ended { url: String },
    #[error("{url}: stream {stream_index}: {message}")]
    Parameters {
        url: String,
        stream_index: usize,
        message: String,
    },
}

struct Runner {
    stream: Arc<Stream>,
    target: watch::Sender<RtspTarget>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The running RTSP sources, by name (= stream id).
pub struct RtspSources {
    hub: Arc<Hub>,
    timing: RtspTiming,
    runners: Mutex<HashMap<String, Runner>>,
}

impl RtspSources {
    pub fn new(hub: Arc<Hub>, timing: RtspTiming) -> Self {
        Self {
            hub,
            timing,
            runners: Mutex::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Runner>> {
        self.runners.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn target_of(record: &SourceRecord) -> Result<RtspTarget, url::ParseError> {
        Ok(RtspTarget {
            url: Url::parse(&record.url)?,
            username: record.username.clone(),
            password: record.password.clone(),
            transport: record.transport,
        })
    }

    /// Starts (or updates in place) the source. Viewers of a running source
    /// keep their connection across an update; the camera is reconnected only
    /// if the URL, credentials or transport changed.
    pub fn apply(&self, record: &SourceRecord, grace: Duration) -> Result<(), url::ParseError> {
        let target = Self::target_of(record)?;
        let policy = DemandPolicy {
            always_on: !record.on_demand,
            grace,
        };
        if !record.enabled {
            self.remove(&record.name);
            return Ok(());
        }
        let mut map = self.map();
        if let Some(r) = map.get(&record.name) {
            r.stream.set_policy(policy);
            r.target.send_if_modified(|t| {
                let changed = *t != target;
                *t = target.clone();
                changed
            });
            return Ok(());
        }
        let stream = match self.hub.create(&record.name, "rtsp", policy) {
            Ok(s) => s,
            Err(_) => {
                // A stale stream of the same name (not ours): replace it.
                self.hub.remove(&record.name);
                match self.hub.create(&record.name, "rtsp", policy) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(stream = %record.name, error = %e, "cannot create stream");
                        return Ok(());
                    }
                }
            }
        };
        let (target_tx, target_rx) = watch::channel(target);
        let cancel = stream.closed().child_token();
        let task = tokio::spawn(run(stream.clone(), target_rx, cancel.clone(), self.timing));
        map.insert(
            record.name.clone(),
            Runner {
                stream,
                target: target_tx,
                cancel,
                task,
            },
        );
        Ok(())
    }

    /// Stops the source and ends its stream.
    pub fn remove(&self, name: &str) {
        if let Some(r) = self.map().remove(name) {
            r.cancel.cancel();
            self.hub.remove(name);
        }
    }

    /// Stops every source and waits (bounded) for their sessions to end.
    pub async fn shutdown(&self, limit: Duration) {
        let runners: Vec<Runner> = self.map().drain().map(|(_, r)| r).collect();
        for r in &runners {
            r.cancel.cancel();
        }
        let all = futures_util::future::join_all(runners.into_iter().map(|r| r.task));
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                "some RTSP sessions did not end within {} s",
                limit.as_secs()
            );
        }
    }
}

async fn run(
    stream: Arc<Stream>,
    mut target: watch::Receiver<RtspTarget>,
    cancel: CancellationToken,
    timing: RtspTiming,
) {
    let mut wanted = stream.wanted();
    let mut backoff = timing.backoff_min;
    let mut failures = 0u32;
    loop {
        // Idle until someone wants the stream.
        stream.set_status(SourceState::Idle, None);
        tokio::select! {
            () = cancel.cancelled() => break,
            r = wanted.wait_for(|w| *w) => if r.is_err() { break },
        }
        stream.set_status(SourceState::Connecting, None);
        let t = target.borrow_and_update().clone();
        let outcome = tokio::select! {
            () = cancel.cancelled() => break,
            r = session(&stream, &t, &mut wanted, &mut target, timing) => r,
        };
        match outcome {
            Ok(SessionEnd::NotWanted) => {
                tracing::info!(stream = %stream.id(), "RTSP session closed: no viewers");
                backoff = timing.backoff_min;
                failures = 0;
            }
            Ok(SessionEnd::TargetChanged) => {
                tracing::info!(stream = %stream.id(), "RTSP source settings changed: reconnecting");
                backoff = timing.backoff_min;
            }
            Err((e, had_media)) => {
                if had_media {
                    backoff = timing.backoff_min;
                    failures = 0;
                }
                failures += 1;
                tracing::warn!(stream = %stream.id(), attempt = failures, retry_in_secs = backoff.as_secs_f32(), error = %e, "RTSP source failed");
                stream.set_status(SourceState::Error, Some(e.to_string()));
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                    _ = target.changed() => {}
                    r = wanted.wait_for(|w| !*w) => if r.is_err() { break },
                }
                backoff = (backoff * 2).min(timing.backoff_max);
            }
        }
    }
    stream.set_status(SourceState::Idle, None);
}

enum SessionEnd {
    NotWanted,
    TargetChanged,
}

async fn with_timeout<T>(
    phase: &'static str,
    url: &Url,
    timeout: Duration,
    f: impl Future<Output = Result<T, retina::Error>>,
) -> Result<T, RtspError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(|source| RtspError::Retina {
            phase,
            url: redacted(url),
            source,
        }),
        Err(_) => Err(RtspError::Timeout {
            phase,
            url: redacted(url),
            timeout,
        }),
    }
}

/// The URL as it may appear in logs and API responses.
fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// DESCRIBE, SETUP of the first usable video and audio streams, PLAY:
/// the demuxed session and the indexes of its video and audio streams.
async fn open(
    target: &RtspTarget,
    connect_timeout: Duration,
) -> Result<(retina::client::Demuxed, Option<usize>, Option<usize>), RtspError> {
    let url = &target.url;
    let creds = match (&target.username, &target.password) {
        (Some(u), p) => Some(Credentials {
            username: u.clone(),
            password: p.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("camgate/{}", env!("CARGO_PKG_VERSION")));
    let mut described = with_timeout(
        "DESCRIBE",
        url,
        connect_timeout,
        retina::client::Session::describe(url.clone(), options),
    )
    .await?;

    let mut chosen = Vec::new();
    let streams = described.streams();
    let video = streams
        .iter()
        .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"));
    let audio = streams.iter().position(|s| {
        s.media() == "audio" && matches!(s.encoding_name(), "mpeg4-generic" | "pcma" | "pcmu")
    });
    chosen.extend(video);
    chosen.extend(audio);
    if chosen.is_empty() {
        return Err(RtspError::NoUsableStream { url: redacted(url) });
    }
    for &index in &chosen {
        let transport = match target.transport {
            StoredTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
            StoredTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
        };
        let options = SetupOptions::default()
            .transport(transport)
            .frame_format(FrameFormat::MP4);
        with_timeout(
            "SETUP",
            url,
            connect_timeout,
            described.setup(index, options),
        )
        .await?;
    }
    let playing = with_timeout(
        "PLAY",
        url,
        connect_timeout,
        described.play(PlayOptions::default()),
    )
    .await?;
    let demuxed = playing.demuxed().map_err(|source| RtspError::Retina {
        phase: "PLAY",
        url: redacted(url),
        source,
    })?;
    Ok((demuxed, video, audio))
}

/// One stream of a probed camera's SDP.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProbedStream {
    pub media: String,
    pub encoding: String,
    pub clock_rate_hz: u32,
    /// Whether camgate would take this stream (first H.264/H.265 video,
    /// first AAC/G.711 audio).
    pub used: bool,
}

/// What a connection test found.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProbeReport {
    pub streams: Vec<ProbedStream>,
    /// RFC 6381 codec of the video, from its parameter sets (`avc1.64001f`).
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// From the start of the connection to the first frame.
    pub first_frame_ms: u64,
}

/// Tests a camera without storing it: connects as a source would (DESCRIBE,
/// SETUP, PLAY) and waits for the first frame, then disconnects.
pub async fn probe(
    target: &RtspTarget,
    connect_timeout: Duration,
    media_timeout: Duration,
) -> Result<ProbeReport, RtspError> {
    let started = std::time::Instant::now();
    let (demuxed, video, audio) = open(target, connect_timeout).await?;
    let mut demuxed = Box::pin(demuxed);
    let url = &target.url;
    loop {
        let item = match tokio::time::timeout(media_timeout, demuxed.next()).await {
            Err(_) => {
                return Err(RtspError::NoMedia {
                    url: redacted(url),
                    timeout: media_timeout,
                });
            }
            Ok(None) => return Err(RtspError::Ended { url: redacted(url) }),
            Ok(Some(Err(source))) => {
                return Err(RtspError::Retina {
                    phase: "streaming",
                    url: redacted(url),
                    source,
                });
            }
            Ok(Some(Ok(item))) => item,
        };
        // The first video frame (or audio frame, for audio-only cameras)
        // proves media flows; video parameters are known by then.
        let done = match item {
            CodecItem::VideoFrame(_) => true,
            CodecItem::AudioFrame(_) => video.is_none(),
            _ => false,
        };
        if !done {
            continue;
        }
        let streams = demuxed.streams();
        let params = video.and_then(|i| match streams.get(i)?.parameters()? {
            ParametersRef::Video(v) => Some((v.rfc6381_codec().to_owned(), v.pixel_dimensions())),
            _ => None,
        });
        return Ok(ProbeReport {
            streams: streams
                .iter()
                .enumerate()
                .map(|(i, s)| ProbedStream {
                    media: s.media().to_owned(),
                    encoding: s.encoding_name().to_owned(),
                    clock_rate_hz: s.clock_rate_hz(),
                    used: Some(i) == video || Some(i) == audio,
                })
                .collect(),
            video_codec: params.as_ref().map(|p| p.0.clone()),
            width: params.as_ref().map(|p| p.1.0),
            height: params.as_ref().map(|p| p.1.1),
            first_frame_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// One RTSP session: connect, stream frames into the hub, return when the
/// stream is no longer wanted or something fails. The error carries whether
/// media had flowed (a session that worked for a while resets the backoff).
async fn session(
    stream: &Arc<Stream>,
    target: &RtspTarget,
    wanted: &mut watch::Receiver<bool>,
    target_rx: &mut watch::Receiver<RtspTarget>,
    timing: RtspTiming,
) -> Result<SessionEnd, (RtspError, bool)> {
    let url = &target.url;
    let (demuxed, video, audio) = open(target, timing.connect_timeout)
        .await
        .map_err(|e| (e, false))?;
    let mut demuxed = Box::pin(demuxed);
    tracing::info!(stream = %stream.id(), url = %redacted(url), transport = target.transport.as_str(), "RTSP session playing");

    let mut publisher = stream.start_publishing(video.is_some(), audio.is_some());
    let mut tracks: HashMap<usize, Arc<TrackInfo>> = HashMap::new();
    let mut had_media = false;
    loop {
        let item = tokio::select! {
            r = wanted.wait_for(|w| !*w) => {
                let _ = r;
                return Ok(SessionEnd::NotWanted);
            }
            _ = target_rx.changed() => return Ok(SessionEnd::TargetChanged),
            item = tokio::time::timeout(timing.media_timeout, demuxed.next()) => item,
        };
        let item = match item {
            Err(_) => {
                return Err((
                    RtspError::NoMedia {
                        url: redacted(url),
                        timeout: timing.media_timeout,
                    },
                    had_media,
                ));
            }
            Ok(None) => return Err((RtspError::Ended { url: redacted(url) }, had_media)),
            Ok(Some(Err(source))) => {
                return Err((
                    RtspError::Retina {
                        phase: "streaming",
                        url: redacted(url),
                        source,
                    },
                    had_media,
                ));
            }
            Ok(Some(Ok(item))) => item,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                let index = f.stream_id();
                if f.loss() > 0 {
                    tracing::debug!(stream = %stream.id(), lost = f.loss(), "RTP packets lost before video frame");
                }
                let track = track_for(
                    &mut tracks,
                    demuxed.streams(),
                    index,
                    f.has_new_parameters(),
                )
                .map_err(|e| (e.with_url(url), had_media))?;
                let ts = f.timestamp();
                let rap = f.is_random_access_point();
                let data = Bytes::from(f.into_data());
                let nals = match nal::split_length_prefixed(&data) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(stream = %stream.id(), error = %e, "dropping malformed video frame");
                        continue;
                    }
                };
                // retina flags IDR only; H.265 encoders (x265's open GOP)
                // send later random access points as CRA, which players
                // and the HLS segmenter must see as keyframes too.
                let keyframe = rap || nal::is_keyframe(track.codec(), &nals);
                let t = rescale(ts.elapsed(), ts.clock_rate(), track.timescale());
                publisher.publish(Frame {
                    track,
                    pts: t,
                    dts: t,
                    keyframe,
                    data: FrameData::Nals(nals),
                    received: None,
                });
            }
            CodecItem::AudioFrame(f) => {
                let track = track_for(&mut tracks, demuxed.streams(), f.stream_id(), false)
                    .map_err(|e| (e.with_url(url), had_media))?;
                let ts = f.timestamp();
                let t = rescale(ts.elapsed(), ts.clock_rate(), track.timescale());
                publisher.publish(Frame {
                    track,
                    pts: t,
                    dts: t,
                    keyframe: true,
                    data: FrameData::Audio(Bytes::copy_from_slice(f.data())),
                    received: None,
                });
            }
            _ => continue,
        }
        if !had_media {
            had_media = true;
            stream.set_status(SourceState::Live, None);
        }
    }
}

/// A track whose parameters could not be turned into a [`TrackInfo`].
struct TrackError {
    stream_index: usize,
    message: String,
}

impl TrackError {
    fn with_url(self, url: &Url) -> RtspError {
        RtspError::Parameters {
            url: redacted(url),
            stream_index: self.stream_index,
            message: self.message,
        }
    }
}

/// The track of SDP stream `index`, described anew when retina reports new
/// parameters (in-band SPS/PPS change) or the first time it is seen.
fn track_for(
    tracks: &mut HashMap<usize, Arc<TrackInfo>>,
    streams: &[retina::client::Stream],
    index: usize,
    refresh: bool,
) -> Result<Arc<TrackInfo>, TrackError> {
    if !refresh && let Some(t) = tracks.get(&index) {
        return Ok(t.clone());
    }
    let track = Arc::new(track_of(streams, index).map_err(|message| TrackError {
        stream_index: index,
        message,
    })?);
    tracks.insert(index, track.clone());
    Ok(track)
}

fn rescale(value: i64, from: NonZeroU32, to: u32) -> i64 {
    if from.get() == to {
        return value;
    }
    (i128::from(value) * i128::from(to) / i128::from(from.get())) as i64
}

/// The hub's description of SDP stream `index`, from retina's parameters.
fn track_of(streams: &[retina::client::Stream], index: usize) -> Result<TrackInfo, String> {
    let s = streams.get(index).ok_or("no such stream")?;
    match s.parameters() {
        Some(ParametersRef::Video(v)) => match v.codec_params() {
            VideoParametersCodec::H264 { sps, pps } => VideoTrack::h264(sps.clone(), pps.clone())
                .map(TrackInfo::Video)
                .map_err(|e| e.to_string()),
            VideoParametersCodec::H265 { vps, sps, pps } => {
                VideoTrack::h265(vps.clone(), sps.clone(), pps.clone())
                    .map(TrackInfo::Video)
                    .map_err(|e| e.to_string())
            }
            _ => Err("unsupported video codec".into()),
        },
        Some(ParametersRef::Audio(a)) => match s.encoding_name() {
            "mpeg4-generic" => AudioTrack::aac(Bytes::copy_from_slice(a.extra_data()))
                .map(TrackInfo::Audio)
                .map_err(|e| e.to_string()),
            "pcma" | "pcmu" => {
                let codec = if s.encoding_name() == "pcma" {
                    Codec::G711A
                } else {
                    Codec::G711U
                };
                let channels = u8::try_from(a.channels().get()).unwrap_or(1);
                Ok(TrackInfo::Audio(AudioTrack::g711(
                    codec,
                    a.clock_rate(),
                    channels,
                )))
            }
            other => Err(format!("unsupported audio encoding {other}")),
        },
        _ => Err("no codec parameters known yet".into()),
    }
}
