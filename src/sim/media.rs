//! Media of the simulator: the input read once, muxed once, sent to every
//! session.
//!
//! A [`MediaSource`] reads the elementary streams at start. While at least
//! one session listens, one task walks through the access units (and audio
//! frames) in timestamp order, muxes each into a PS pack with
//! [`PsMuxer`] (gb28181.md §7: one pack per frame, system header and PSM in
//! keyframe packs), and paces them in real time against one anchor
//! (`sleep_until(start + pts)`, so no drift accumulates). The file loops with
//! continuous timestamps. Packs go out on a bounded broadcast channel; each
//! session packetises them with its own [`Packetizer`] (its SSRC and
//! sequence numbers) and sends them (gb28181.md §6): RTP over UDP, or RFC
//! 4571 over TCP. A session starts at a keyframe, and a session that falls
//! behind skips to the next keyframe.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::SimError;
use crate::codec::Codec;
use crate::codec::es::{AudioEs, AudioFileKind, DEFAULT_G711_FRAME_MS, FrameRate, VideoEs};
use crate::egress::ps::{PsMuxOptions, PsMuxer};
use crate::ingest::rtp::{Packetizer, PacketizerConfig};
use crate::media::Frame;

/// Packs buffered for sessions: about 2–5 s of video (with audio packs).
const BROADCAST_CAPACITY: usize = 128;
/// RTP payload size cameras use (gb28181.md §6 "Packets").
pub const RTP_PAYLOAD: usize = 1400;
/// Payload type of PS (gb28181.md §5 "Payload types").
pub const PT_PS: u8 = 96;
/// Behind schedule by more than this, the pacer re-anchors instead of
/// bursting to catch up.
const MAX_LATE: Duration = Duration::from_secs(1);
/// A stalled TCP write ends the session: the platform stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Packs in a row whose sends met ICMP port unreachable before a UDP
/// session ends.
const MAX_REFUSED_PACKS: u32 = 5;
/// GB/T 28181-2022 Annex D: the TCP client tries at least 3 times, at least
/// 1 s apart (gb28181.md §6).
const CONNECT_ATTEMPTS: u32 = 3;
const CONNECT_RETRY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long we wait for the platform to connect in TCP-passive mode.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Audio added to the video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioInput {
    /// G.711 (A-law or mu-law): raw 8 kHz samples from a file, or a 1 kHz
    /// tone when no file is given.
    G711 { codec: Codec, file: Option<PathBuf> },
    /// AAC in ADTS frames from a file.
    AacFile(PathBuf),
}

/// Quirks of real devices' PS (fixtures README), all off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PsQuirks {
    /// 6-byte pack stuffing with a rising counter (Hikvision).
    pub stuffing_counter: bool,
    /// One PES per NAL unit.
    pub pes_per_nal: bool,
    /// A private_stream_1 (0xBD) PES in every video pack (Hikvision).
    pub private_bd: bool,
    /// No system header and no PSM.
    pub no_psm: bool,
}

impl PsQuirks {
    pub fn mux_options(self) -> PsMuxOptions {
        PsMuxOptions {
            stuffing_counter: self.stuffing_counter.then_some(6),
            pes_per_nal: self.pes_per_nal,
            private_bd: self.private_bd,
            no_psm: self.no_psm,
            ..PsMuxOptions::default()
        }
    }
}

/// One muxed frame.
#[derive(Clone, Debug)]
pub struct Pack {
    pub data: Bytes,
    /// The frame's time at 90 kHz, as RTP carries it (wrapping).
    pub rtp_ts: u32,
    /// A video keyframe pack: sessions start here.
    pub keyframe: bool,
    /// When the pacer released it.
    pub due: Instant,
}

/// The input, shared by every session.
pub struct MediaSource {
    video: VideoEs,
    audio: Option<AudioEs>,
    rate: FrameRate,
    options: PsMuxOptions,
    tx: broadcast::Sender<Pack>,
    running: Mutex<bool>,
    shutdown: CancellationToken,
}

impl MediaSource {
    /// Reads the input files (blocking IO: call from a blocking thread) and
    /// checks the muxer options.
    pub fn load(
        input: &Path,
        audio: Option<&AudioInput>,
        fps: u32,
        quirks: PsQuirks,
        shutdown: CancellationToken,
    ) -> Result<Self, SimError> {
        let es_err = |path: &Path| {
            let path = path.to_owned();
            move |source| SimError::Input { path, source }
        };
        let video = VideoEs::read_file(input).map_err(es_err(input))?;
        let rate = FrameRate::fps(fps).map_err(es_err(input))?;
        let audio = match audio {
            None => None,
            Some(AudioInput::AacFile(p)) => {
                Some(AudioEs::read_file(p, AudioFileKind::AacAdts).map_err(es_err(p))?)
            }
            Some(AudioInput::G711 { codec, file }) => {
                let kind = AudioFileKind::G711 {
                    codec: *codec,
                    frame_ms: DEFAULT_G711_FRAME_MS,
                };
                Some(match file {
                    Some(p) => AudioEs::read_file(p, kind).map_err(es_err(p))?,
                    None => AudioEs::parse(g711_tone(*codec), kind).map_err(es_err(input))?,
                })
            }
        };
        let options = quirks.mux_options();
        PsMuxer::new(options.clone()).map_err(|source| SimError::Mux { source })?;
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        tracing::info!(
            input = %input.display(),
            codec = %video.codec(),
            frames = video.len(),
            fps,
            audio = audio.as_ref().map(|a| a.track().codec().name()),
            "sim input loaded"
        );
        Ok(Self {
            video,
            audio,
            rate,
            options,
            tx,
            running: Mutex::new(false),
            shutdown,
        })
    }

    pub fn video_codec(&self) -> Codec {
        self.video.codec()
    }

    /// One video frame's duration.
    pub fn frame_interval(&self) -> Duration {
        ticks_to_duration(self.rate.ticks(1, 90_000))
    }

    /// Packs from now on; starts the pacer if it is idle.
    pub fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<Pack> {
        let mut running = lock(&self.running);
        let rx = self.tx.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(self.clone().pace());
        }
        rx
    }

    /// The next frame in timestamp order: (frame, 90 kHz time, is video).
    fn next_frame(&self, cursor: &mut Cursor) -> Option<(Frame, i64, bool)> {
        let vts = cursor
            .v_off
            .saturating_add(self.rate.ticks(cursor.v as u64, 90_000));
        let audio = self.audio.as_ref().and_then(|a| {
            let u = a.units().get(cursor.a)?;
            let rate = i128::from(a.track().timescale());
            let samples = i128::from(cursor.a_off.saturating_add(u.pts));
            let ts = i64::try_from(samples * 90_000 / rate).unwrap_or(i64::MAX);
            Some((a, ts))
        });
        match audio {
            Some((a, ats)) if ats < vts => {
                let f = a.frame(cursor.a, cursor.a_off)?;
                cursor.a += 1;
                if cursor.a >= a.len() {
                    cursor.a = 0;
                    cursor.a_off = cursor.a_off.saturating_add(a.duration());
                }
                Some((f, ats, false))
            }
            _ => {
                let f = self.video.frame(cursor.v, self.rate, cursor.v_off)?;
                cursor.v += 1;
                if cursor.v >= self.video.len() {
                    cursor.v = 0;
                    cursor.v_off = cursor.v_off.saturating_add(self.video.duration(self.rate));
                }
                Some((f, vts, true))
            }
        }
    }

    async fn pace(self: Arc<Self>) {
        let mut muxer = match PsMuxer::new(self.options.clone()) {
            Ok(m) => m,
            Err(e) => {
                // Checked in `load`; kept as a guard.
                tracing::error!(error = %e, "sim PS muxer refused its options");
                *lock(&self.running) = false;
                return;
            }
        };
        muxer.declare_track(self.video.track().clone());
        if let Some(a) = &self.audio {
            muxer.declare_track(a.track().clone());
        }
        let mut cursor = Cursor::default();
        let mut anchor = Instant::now();
        let mut anchor_ts = 0i64;
        let mut errors = 0u64;
        tracing::debug!("sim pacer started");
        loop {
            let Some((frame, ts, is_video)) = self.next_frame(&mut cursor) else {
                tracing::error!("sim input has no frame to send");
                break;
            };
            let due = anchor + ticks_to_duration(ts.saturating_sub(anchor_ts));
            let now = Instant::now();
            if now > due + MAX_LATE {
                tracing::debug!(
                    late_ms = (now - due).as_millis() as u64,
                    "sim pacer late: re-anchoring"
                );
                anchor = now;
                anchor_ts = ts;
            } else {
                tokio::select! {
                    () = self.shutdown.cancelled() => break,
                    () = tokio::time::sleep_until(due) => {}
                }
            }
            {
                let mut running = lock(&self.running);
                if self.tx.receiver_count() == 0 {
                    *running = false;
                    tracing::debug!("sim pacer idle: no session");
                    return;
                }
            }
            match muxer.mux(&frame) {
                Ok(data) => {
                    let _ = self.tx.send(Pack {
                        data,
                        rtp_ts: ts as u32,
                        keyframe: is_video && frame.keyframe,
                        due: due.max(anchor),
                    });
                }
                Err(e) => {
                    errors += 1;
                    if errors == 1 {
                        tracing::warn!(error = %e, "sim cannot mux a frame; skipped");
                    }
                }
            }
        }
        *lock(&self.running) = false;
    }
}

/// What the platform asked of a playback (MANSRTSP in INFO).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaybackState {
    pub paused: bool,
    pub scale: f64,
    /// (request number, seconds from the start): a new number is a new seek.
    pub seek: Option<(u32, u64)>,
}

impl Default for PlaybackState {
    fn default() -> Self {
        Self {
            paused: false,
            scale: 1.0,
            seek: None,
        }
    }
}

impl MediaSource {
    /// A playback of the input from its first frame, once, paced at the
    /// asked speed and paused/seeked on request: packs go to the returned
    /// receiver; `eof` fires after the last frame. The sender lives until
    /// `stop`, so the session stays up after the end (the platform ends it
    /// with BYE after MediaStatus 121).
    pub fn playback(
        self: &Arc<Self>,
        mut ctl: watch::Receiver<PlaybackState>,
        stop: CancellationToken,
    ) -> (
        broadcast::Receiver<Pack>,
        tokio::sync::oneshot::Receiver<()>,
    ) {
        let (tx, rx) = broadcast::channel(1024);
        let (eof_tx, eof_rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(mut muxer) = PsMuxer::new(this.options.clone()) else {
                return;
            };
            muxer.declare_track(this.video.track().clone());
            if let Some(a) = &this.audio {
                muxer.declare_track(a.track().clone());
            }
            let mut cursor = Cursor::default();
            let mut state = *ctl.borrow_and_update();
            let mut anchor = Instant::now();
            let mut anchor_ts: Option<i64> = None;
            let mut seek_seen = state.seek.map(|s| s.0);
            let total = this.video.len();
            let mut sent_video = 0usize;
            // `changed()` below marks the value seen: remember to read it.
            let mut dirty = false;
            while sent_video < total {
                if dirty || ctl.has_changed().unwrap_or(false) {
                    dirty = false;
                    state = *ctl.borrow_and_update();
                    // Speed or pause changed: the schedule restarts here.
                    anchor_ts = None;
                    if let Some((n, secs)) = state.seek
                        && seek_seen != Some(n)
                    {
                        seek_seen = Some(n);
                        let per_frame = this.frame_interval().as_secs_f64().max(1e-3);
                        let frame =
                            ((secs as f64 / per_frame) as usize).min(total.saturating_sub(1));
                        cursor = Cursor {
                            v: frame,
                            ..Cursor::default()
                        };
                        sent_video = frame;
                    }
                }
                if state.paused {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        r = ctl.changed() => if r.is_err() { return },
                    }
                    dirty = true;
                    continue;
                }
                let Some((frame, ts, is_video)) = this.next_frame(&mut cursor) else {
                    break;
                };
                let (a, a_ts) = match anchor_ts {
                    Some(t) => (anchor, t),
                    None => {
                        anchor = Instant::now();
                        anchor_ts = Some(ts);
                        (anchor, ts)
                    }
                };
                let scale = state.scale.clamp(0.1, 16.0);
                let due = a + ticks_to_duration(((ts - a_ts) as f64 / scale) as i64);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep_until(due) => {}
                    r = ctl.changed() => {
                        if r.is_err() { return }
                        // Applied at the top of the loop, after this frame.
                        dirty = true;
                    }
                }
                if is_video {
                    sent_video += 1;
                }
                if let Ok(data) = muxer.mux(&frame) {
                    let _ = tx.send(Pack {
                        data,
                        rtp_ts: ts as u32,
                        keyframe: is_video && frame.keyframe,
                        due,
                    });
                }
            }
            let _ = eof_tx.send(());
            stop.cancelled().await;
            drop(tx);
        });
        (rx, eof_rx)
    }
}

#[derive(Default)]
struct Cursor {
    v: usize,
    v_off: i64,
    a: usize,
    a_off: i64,
}

/// 90 kHz ticks as a duration (negative = zero).
fn ticks_to_duration(ticks: i64) -> Duration {
    let t = u64::try_from(ticks).unwrap_or(0);
    Duration::from_nanos(t.saturating_mul(100_000) / 9)
}

/// One second of a 1 kHz tone at 8 kHz, G.711-encoded: loops seamlessly
/// (8 samples per period).
fn g711_tone(codec: Codec) -> Bytes {
    (0..8000u32)
        .map(|i| {
            let phase = f64::from(i % 8) * std::f64::consts::TAU / 8.0;
            let pcm = (phase.sin() * 8000.0) as i16;
            if codec == Codec::G711U {
                linear_to_ulaw(pcm)
            } else {
                linear_to_alaw(pcm)
            }
        })
        .collect::<Vec<u8>>()
        .into()
}

/// ITU-T G.711 A-law encoding of a 16-bit sample (the segment search of the
/// reference implementation, Sun's g711.c).
fn linear_to_alaw(pcm: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let mut v = i32::from(pcm) >> 3;
    let mask: i32 = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    let Some(seg) = SEG_END.iter().position(|&e| v <= e) else {
        return (0x7f ^ mask) as u8;
    };
    let mantissa = (if seg < 2 { v >> 1 } else { v >> seg }) & 0x0f;
    (((seg as i32) << 4 | mantissa) ^ mask) as u8
}

/// ITU-T G.711 mu-law encoding of a 16-bit sample (Sun's g711.c).
fn linear_to_ulaw(pcm: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 8159;
    let mut v = i32::from(pcm) >> 2;
    let mask: i32 = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    v = v.min(CLIP) + (BIAS >> 2);
    let Some(seg) = SEG_END.iter().position(|&e| v <= e) else {
        return (0x7f ^ mask) as u8;
    };
    (((seg as i32) << 4 | ((v >> (seg + 1)) & 0x0f)) ^ mask) as u8
}

/// Where a session's media goes, prepared before the 200 is sent.
pub enum MediaSocket {
    /// Connected to the platform's port.
    Udp(UdpSocket),
    /// Waiting for the platform to connect.
    Listen(TcpListener),
    /// To connect to after the ACK.
    Connect(SocketAddr),
}

impl MediaSocket {
    pub fn describe(&self) -> String {
        match self {
            MediaSocket::Udp(s) => s.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
            MediaSocket::Listen(l) => l
                .local_addr()
                .map(|a| format!("listen {a}"))
                .unwrap_or_default(),
            MediaSocket::Connect(a) => a.to_string(),
        }
    }
}

/// Why a session's media ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// `stop` fired (BYE from the platform, or shutdown).
    Stopped,
    /// The platform went away or never came: we end the dialog.
    PeerGone(String),
}

/// What a session sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamStats {
    pub packets: u64,
    pub bytes: u64,
    pub packs: u64,
}

/// What a session needs to stream.
pub struct StreamParams<'a> {
    pub device_id: &'a str,
    pub channel_id: &'a str,
    pub ssrc: u32,
    pub transport: &'static str,
}

enum Sink {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// Streams `source` to the platform until `stop` fires or the platform goes
/// away. Logs `sim media started` once packets can flow.
pub async fn stream(
    source: &Arc<MediaSource>,
    packs: Option<broadcast::Receiver<Pack>>,
    socket: MediaSocket,
    p: &StreamParams<'_>,
    stop: &CancellationToken,
    stats: &mut StreamStats,
) -> StreamEnd {
    let (sink, peer) = match socket {
        MediaSocket::Udp(s) => {
            let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            (Sink::Udp(s), peer)
        }
        MediaSocket::Listen(l) => {
            let accepted = tokio::select! {
                () = stop.cancelled() => return StreamEnd::Stopped,
                r = tokio::time::timeout(ACCEPT_TIMEOUT, l.accept()) => r,
            };
            match accepted {
                Ok(Ok((s, from))) => (Sink::Tcp(s), from.to_string()),
                Ok(Err(e)) => return StreamEnd::PeerGone(format!("accept failed: {e}")),
                Err(_) => {
                    return StreamEnd::PeerGone(format!(
                        "the platform did not connect within {} s",
                        ACCEPT_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        MediaSocket::Connect(addr) => match connect(addr, p, stop).await {
            Ok(Some(s)) => (Sink::Tcp(s), addr.to_string()),
            Ok(None) => return StreamEnd::Stopped,
            Err(e) => return StreamEnd::PeerGone(e),
        },
    };
    if let Sink::Tcp(s) = &sink
        && let Err(e) = s.set_nodelay(true)
    {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on a media connection");
    }
    let random = crate::util::random_hex(4)
        .ok()
        .and_then(|h| u32::from_str_radix(&h, 16).ok())
        .unwrap_or(0);
    let initial_sequence = (random >> 16) as u16;
    // Sessions share the pacer, so without this every session would send
    // its keyframe in the same instant (200 sessions: megabytes at once).
    // Each sends at its own fixed offset within one frame interval, like
    // independent cameras.
    let interval_us = source.frame_interval().as_micros().max(1) as u32;
    let spread =
        Duration::from_micros(u64::from(random & 0xffff) * u64::from(interval_us) / 0x1_0000);
    let mut packetizer = match Packetizer::new(PacketizerConfig {
        ssrc: p.ssrc,
        payload_type: PT_PS,
        initial_sequence,
        max_payload: RTP_PAYLOAD,
    }) {
        Ok(x) => x,
        Err(e) => return StreamEnd::PeerGone(format!("RTP packetizer: {e}")),
    };
    tracing::info!(
        device_id = %p.device_id,
        channel_id = %p.channel_id,
        transport = %p.transport,
        peer = %peer,
        ssrc = %format_args!("{:010}", p.ssrc),
        "sim media started"
    );
    // Live: the shared pacer; playback: the session's own.
    let mut rx = packs.unwrap_or_else(|| source.subscribe());
    let mut waiting_key = true;
    let mut refused_packs = 0u32;
    let mut packets = Vec::with_capacity(64);
    let mut scratch = [0u8; 2048];
    let (mut reader, mut writer) = match sink {
        Sink::Udp(s) => (None, SinkWriter::Udp(s)),
        Sink::Tcp(s) => {
            let (r, w) = s.into_split();
            (Some(r), SinkWriter::Tcp(w))
        }
    };
    loop {
        let pack = tokio::select! {
            biased;
            () = stop.cancelled() => return StreamEnd::Stopped,
            r = read_some(&mut reader, &mut scratch) => match r {
                // RTCP or anything else the platform sends is ignored.
                Ok(_) => continue,
                Err(why) => return StreamEnd::PeerGone(why),
            },
            r = rx.recv() => match r {
                Ok(pack) => pack,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(device_id = %p.device_id, channel_id = %p.channel_id, skipped = n, "sim session fell behind: waiting for a keyframe");
                    waiting_key = true;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return StreamEnd::PeerGone("the media source ended".into());
                }
            },
        };
        if waiting_key {
            if !pack.keyframe {
                continue;
            }
            waiting_key = false;
        }
        tokio::select! {
            () = stop.cancelled() => return StreamEnd::Stopped,
            () = tokio::time::sleep_until(pack.due + spread) => {}
        }
        packets.clear();
        stats.packs += 1;
        match &mut writer {
            SinkWriter::Udp(s) => {
                packetizer.packetize(&pack.data, pack.rtp_ts, &mut packets);
                let mut refused = false;
                for pkt in &packets {
                    match s.send(pkt).await {
                        Ok(n) => {
                            stats.packets += 1;
                            stats.bytes += n as u64;
                        }
                        // ICMP port unreachable from an earlier send (Linux
                        // reports it on a connected socket).
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused = true,
                        Err(e) => {
                            tracing::debug!(device_id = %p.device_id, error = %e, "RTP send failed")
                        }
                    }
                }
                refused_packs = if refused { refused_packs + 1 } else { 0 };
                if refused_packs >= MAX_REFUSED_PACKS {
                    return StreamEnd::PeerGone(
                        "the platform's RTP port is closed (ICMP port unreachable)".into(),
                    );
                }
            }
            SinkWriter::Tcp(w) => {
                packetizer.packetize_rfc4571(&pack.data, pack.rtp_ts, &mut packets);
                let total: usize = packets.iter().map(Bytes::len).sum();
                let mut buf = BytesMut::with_capacity(total);
                for pkt in &packets {
                    buf.extend_from_slice(pkt);
                }
                let write = tokio::select! {
                    () = stop.cancelled() => return StreamEnd::Stopped,
                    r = tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&buf)) => r,
                };
                match write {
                    Ok(Ok(())) => {
                        stats.packets += packets.len() as u64;
                        stats.bytes += total as u64;
                    }
                    Ok(Err(e)) => {
                        return StreamEnd::PeerGone(format!("TCP media write failed: {e}"));
                    }
                    Err(_) => {
                        return StreamEnd::PeerGone(format!(
                            "the platform stopped reading (TCP write stalled {} s)",
                            WRITE_TIMEOUT.as_secs()
                        ));
                    }
                }
            }
        }
    }
}

enum SinkWriter {
    Udp(UdpSocket),
    Tcp(tokio::net::tcp::OwnedWriteHalf),
}

/// Reads from the TCP media connection (pending forever for UDP): `Err`
/// when the platform closed it.
async fn read_some(
    reader: &mut Option<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut [u8],
) -> Result<usize, String> {
    match reader {
        None => std::future::pending().await,
        Some(r) => match r.read(buf).await {
            Ok(0) => Err("the platform closed the TCP connection".into()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("TCP media connection failed: {e}")),
        },
    }
}

/// TCP-active media (gb28181.md §6): connect to the platform, retrying.
/// `Ok(None)` when stopped meanwhile.
async fn connect(
    addr: SocketAddr,
    p: &StreamParams<'_>,
    stop: &CancellationToken,
) -> Result<Option<TcpStream>, String> {
    let mut last = String::new();
    for attempt in 1..=CONNECT_ATTEMPTS {
        let r = tokio::select! {
            () = stop.cancelled() => return Ok(None),
            r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)) => r,
        };
        match r {
            Ok(Ok(s)) => return Ok(Some(s)),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tracing::debug!(device_id = %p.device_id, channel_id = %p.channel_id, peer = %addr, attempt, error = %last, "media TCP connect failed");
        if attempt < CONNECT_ATTEMPTS {
            tokio::select! {
                () = stop.cancelled() => return Ok(None),
                () = tokio::time::sleep(CONNECT_RETRY) => {}
            }
        }
    }
    Err(format!(
        "cannot connect to {addr} after {CONNECT_ATTEMPTS} attempts: {last}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_reference_values() {
        // Silence and full scale (Sun g711.c).
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(g711_tone(Codec::G711A).len(), 8000);
    }

    #[test]
    fn ticks() {
        assert_eq!(ticks_to_duration(90_000), Duration::from_secs(1));
        assert_eq!(ticks_to_duration(3600), Duration::from_millis(40));
        assert_eq!(ticks_to_duration(-5), Duration::ZERO);
    }
}
