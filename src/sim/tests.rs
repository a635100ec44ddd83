//! The simulator against camgate's own platform ([`Platform`] on a
//! [`SipEndpoint`] with a temporary [`Store`]): registration with digest
//! (`qop=auth`), catalog in several MESSAGEs, DeviceInfo/DeviceStatus,
//! INVITE over UDP, TCP passive and TCP active, BYE from either side,
//! unregistration at stop. Media is the real fixture
//! `h264-es/240x320.h264`, paced in real time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::gb::manscdp::Body;
use crate::gb::media::{MediaTransport, ssrc_value};
use crate::gb::platform::InviteRequest;
use crate::gb::{Answer, GbConfig, Platform};
use crate::ingest::rtp::{Rfc4571Config, Rfc4571Framer, RtpPacket};
use crate::sip::endpoint::{EndpointConfig, SipEndpoint};
use crate::store::{SipSettings, Store, db};

const PASSWORD: &str = "s3cret-pw";
const PS_PACK: [u8; 4] = [0, 0, 1, 0xba];

/// `CAMGATE_REAL_FIXTURES`, else the shared fixtures directory. A test told
/// to use them that cannot find them fails (fixtures README).
fn fixture(rel: &str) -> PathBuf {
    let root = std::env::var_os("CAMGATE_REAL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/fixtures"));
    let p = root.join(rel);
    assert!(p.is_file(), "fixture {} missing", p.display());
    p
}

struct TestPlatform {
    platform: Arc<Platform>,
    store: Store,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Logs to the test output when `RUST_LOG` is set.
fn init_logs() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

async fn platform() -> TestPlatform {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).unwrap();
    store
        .call_sync(|c| {
            db::put_setting(
                c,
                db::SIP_KEY,
                &SipSettings {
                    password: Some(PASSWORD.into()),
                    auto_accept: true,
                    ..SipSettings::default()
                },
            )
        })
        .unwrap();
    let stop = CancellationToken::new();
    let (endpoint, inbound) = SipEndpoint::start(
        EndpointConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits: crate::sip::Limits::default(),
            timers: crate::sip::transaction::Timers::default(),
            max_tcp_connections: 64,
        },
        stop.clone(),
    )
    .await
    .unwrap();
    let platform = Platform::start(
        endpoint,
        inbound,
        store.clone(),
        GbConfig {
            query_timeout: Duration::from_secs(5),
            catalog_idle_timeout: Duration::from_secs(5),
            ..GbConfig::default()
        },
        stop.clone(),
    )
    .await
    .unwrap();
    TestPlatform {
        platform,
        store,
        stop,
        _dir: dir,
    }
}

fn sim_config(p: &TestPlatform, devices: usize, channels: usize) -> SimConfig {
    let mut c = SimConfig::new(p.platform.sip_addr(), fixture("h264-es/240x320.h264"));
    c.devices = devices;
    c.channels = channels;
    c.password = PASSWORD.into();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.keepalive = Duration::from_secs(1);
    c
}

/// Polls `f` every 50 ms until it is true, for at most `secs`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn invite_request(device: &str, channel: &str, t: MediaTransport, port: u16) -> InviteRequest {
    InviteRequest {
        device_id: device.into(),
        channel_id: channel.into(),
        kind: crate::gb::media::SessionKind::Play,
        transport: t,
        media_ip: "127.0.0.1".parse().unwrap(),
        media_port: port,
        time_range: None,
        download_speed: None,
    }
}

/// Checks RTP packets of one session: SSRC, PT 96, the first payload a PS
/// pack, packs of a frame sharing a timestamp with the marker on the last,
/// 40 ms (3600 ticks at 25 fps) between video frames. Returns the frames
/// seen and the joined payload.
fn check_rtp(packets: &[Bytes], ssrc: u32) -> (usize, Vec<u8>) {
    assert!(!packets.is_empty(), "no RTP packet");
    let mut frames = 0;
    let mut payload = Vec::new();
    let mut last_ts: Option<u32> = None;
    let mut last_seq: Option<u16> = None;
    for (i, raw) in packets.iter().enumerate() {
        let p = RtpPacket::parse(raw.clone()).expect("RTP parses");
        assert_eq!(p.ssrc(), ssrc, "packet {i}: SSRC");
        assert_eq!(p.payload_type(), 96, "packet {i}: PT");
        assert!(p.payload().len() <= 1400);
        if i == 0 {
            assert_eq!(&p.payload()[..4], &PS_PACK, "first payload is a PS pack");
        }
        if let Some(s) = last_seq {
            assert_eq!(p.sequence(), s.wrapping_add(1), "packet {i}: sequence");
        }
        last_seq = Some(p.sequence());
        if let Some(t) = last_ts
            && t != p.timestamp()
        {
            assert!(
                p.timestamp().wrapping_sub(t) <= 3600,
                "packet {i}: timestamp step"
            );
        }
        if p.marker() {
            frames += 1;
        }
        last_ts = Some(p.timestamp());
        payload.extend_from_slice(p.payload());
    }
    (frames, payload)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_answers_queries_and_streams_over_udp() {
    let p = platform().await;
    let sim = Sim::start(sim_config(&p, 2, 3)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), sim.wait_ready())
        .await
        .expect("all devices registered");
    assert!(sim.sip_addr().is_some());
    let devices = sim.devices();
    assert_eq!(devices.len(), 2);

    // Registration triggers the platform's Catalog query (answered in 2
    // MESSAGEs of 2 + 1 items) and then DeviceInfo.
    for (dev, channels) in &devices {
        let (store, d) = (p.store.clone(), dev.clone());
        eventually(10, "catalog and device info", || {
            let (store, d) = (store.clone(), d.clone());
            async move {
                store
                    .call(move |c| {
                        let chans = db::list_channels(c, &d)?;
                        let dev = db::get_device(c, &d)?;
                        Ok(chans.len() == 3
                            && dev
                                .is_some_and(|r| r.manufacturer.as_deref() == Some("camgate-sim")))
                    })
                    .await
                    .unwrap_or(false)
            }
        })
        .await;
        let d = dev.clone();
        let stored = p
            .store
            .call(move |c| db::list_channels(c, &d))
            .await
            .unwrap();
        let ids: Vec<&str> = stored.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, channels.iter().map(String::as_str).collect::<Vec<_>>());
        let names: Vec<&str> = stored.iter().filter_map(|c| c.name.as_deref()).collect();
        assert_eq!(
            names,
            ["通道01", "通道02", "通道03"],
            "GB18030 names decoded"
        );
        assert!(
            stored
                .iter()
                .all(|c| c.parent_id.as_deref() == Some(dev.as_str()))
        );
        let d = dev.clone();
        let rec = p
            .store
            .call(move |c| db::get_device(c, &d))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.channel_count, Some(3));
        assert!(p.platform.is_online(dev));
    }
    let (dev, channels) = &devices[1];
    match p.platform.query(dev, "DeviceStatus", &[]).await.unwrap() {
        Answer::Message(m) => match m.body {
            Body::DeviceStatus(s) => assert_eq!(s.online.as_deref(), Some("ONLINE")),
            other => panic!("not a DeviceStatus: {other:?}"),
        },
        other => panic!("unexpected answer {other:?}"),
    }

    // Live over UDP to a local socket.
    let (rx, port) = udp_receiver().await;
    let ssrc = p
        .platform
        .allocate_ssrc(crate::gb::media::SessionKind::Play, dev)
        .unwrap();
    let ssrc_num = ssrc_value(&ssrc).unwrap();
    let mut dialog = p
        .platform
        .invite(
            &invite_request(dev, &channels[1], MediaTransport::Udp, port),
            &ssrc,
        )
        .await
        .unwrap();
    assert_eq!(
        dialog.media_ssrc(),
        Some(ssrc_num),
        "answered the offered y="
    );
    assert_eq!(sim.active_sessions(), 1);
    let mut packets = Vec::new();
    let mut buf = vec![0u8; 2048];
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, rx.recv(&mut buf)).await {
        packets.push(Bytes::copy_from_slice(&buf[..n]));
    }
    let (frames, payload) = check_rtp(&packets, ssrc_num);
    // Real time: 1.5 s at 25 fps, less the wait for the first keyframe
    // when the pacer already ran; never a burst.
    assert!((5..=45).contains(&frames), "{frames} frames in 1.5 s");
    assert!(
        contains(&payload, &[0, 0, 1, 0xbc]),
        "keyframe pack has a PSM"
    );
    assert!(contains(&payload, &[0, 0, 1, 0xe0]), "video PES");

    // BYE from the platform stops the stream.
    p.platform.bye(&mut dialog).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), rx.recv(&mut buf)).await {}
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv(&mut buf))
            .await
            .is_err(),
        "RTP still arriving after BYE"
    );
    eventually(2, "session gone", || async { sim.active_sessions() == 0 }).await;

    // The platform stops reading (its port closes, ICMP port unreachable):
    // the device ends the dialog with BYE.
    let (rx, port) = udp_receiver().await;
    let ssrc = p
        .platform
        .allocate_ssrc(crate::gb::media::SessionKind::Play, dev)
        .unwrap();
    let dialog = p
        .platform
        .invite(
            &invite_request(dev, &channels[0], MediaTransport::Udp, port),
            &ssrc,
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), rx.recv(&mut buf))
        .await
        .expect("RTP arrives")
        .unwrap();
    drop(rx);
    let mut ended = dialog.ended.clone();
    tokio::time::timeout(Duration::from_secs(3), ended.wait_for(|e| *e))
        .await
        .expect("device sent BYE after ICMP port unreachable")
        .unwrap();
    eventually(2, "session gone", || async { sim.active_sessions() == 0 }).await;

    // A 404 to a keepalive (the platform forgot the device) makes it
    // register again (keepalive every second here).
    p.platform.forget(dev);
    assert!(!p.platform.is_online(dev));
    eventually(5, "registered again after a 404", || async {
        p.platform.is_online(dev)
    })
    .await;

    // Graceful stop: BYE for the session still running, then every device
    // unregisters.
    let (_rx, port) = udp_receiver().await;
    let ssrc = p
        .platform
        .allocate_ssrc(crate::gb::media::SessionKind::Play, dev)
        .unwrap();
    let dialog = p
        .platform
        .invite(
            &invite_request(dev, &channels[2], MediaTransport::Udp, port),
            &ssrc,
        )
        .await
        .unwrap();
    assert_eq!(sim.active_sessions(), 1);
    sim.stop().await;
    assert!(*dialog.ended.borrow(), "BYE from the device at stop");
    for (dev, _) in &devices {
        eventually(2, "device offline", || async { !p.platform.is_online(dev) }).await;
    }
}

async fn udp_receiver() -> (UdpSocket, u16) {
    let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = rx.local_addr().unwrap().port();
    (rx, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_signalling_and_tcp_media_in_both_directions() {
    let p = platform().await;
    let mut cfg = sim_config(&p, 1, 1);
    cfg.transport = SipTransport::Tcp;
    cfg.answer_zero_ssrc = true;
    cfg.charset = Charset::Utf8;
    cfg.audio = Some(AudioInput::G711 {
        codec: crate::codec::Codec::G711A,
        file: None,
    });
    cfg.quirks.stuffing_counter = true;
    let sim = Sim::start(cfg).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), sim.wait_ready())
        .await
        .expect("registered over TCP");
    let (dev, channels) = sim.devices().remove(0);
    assert_eq!(
        p.platform.runtime(&dev).map(|r| r.transport),
        Some("tcp"),
        "registered over TCP"
    );

    // TCP passive on the platform's side: the simulator connects to us.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ssrc = p
        .platform
        .allocate_ssrc(crate::gb::media::SessionKind::Play, &dev)
        .unwrap();
    let ssrc_num = ssrc_value(&ssrc).unwrap();
    let dialog = p
        .platform
        .invite(
            &invite_request(&dev, &channels[0], MediaTransport::TcpPassive, port),
            &ssrc,
        )
        .await
        .unwrap();
    assert_eq!(
        dialog.media_ssrc(),
        None,
        "--answer-zero-ssrc answers y=0000000000"
    );
    assert_eq!(dialog.answer.setup.as_deref(), Some("active"));
    let (stream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("simulator connected")
        .unwrap();
    let (packets, stream) = read_rfc4571(stream, 40).await;
    let (frames, payload) = check_rtp(&packets, ssrc_num);
    assert!(frames >= 40, "{frames} packs");
    assert!(contains(&payload, &[0, 0, 1, 0xc0]), "G.711A audio PES");
    // The stuffing counter: pack headers end `FE FF FF` + 32-bit counter.
    assert!(
        contains(&payload, &[0xfe, 0xff, 0xff]),
        "6-byte pack stuffing"
    );
    // The platform goes away: the simulator ends the dialog with BYE.
    drop(stream);
    let mut ended = dialog.ended.clone();
    tokio::time::timeout(Duration::from_secs(5), ended.wait_for(|e| *e))
        .await
        .expect("device sent BYE")
        .unwrap();
    eventually(2, "session gone", || async { sim.active_sessions() == 0 }).await;

    // TCP active on the platform's side: we connect to the simulator.
    let ssrc = p
        .platform
        .allocate_ssrc(crate::gb::media::SessionKind::Play, &dev)
        .unwrap();
    let ssrc_num = ssrc_value(&ssrc).unwrap();
    let mut dialog = p
        .platform
        .invite(
            &invite_request(&dev, &dev, MediaTransport::TcpActive, 9),
            &ssrc,
        )
        .await
        .unwrap();
    assert_eq!(dialog.answer.setup.as_deref(), Some("passive"));
    let addr = dialog
        .answer
        .addr
        .expect("answer has the port to connect to");
    let stream = TcpStream::connect(addr).await.unwrap();
    let (packets, mut stream) = read_rfc4571(stream, 20).await;
    let (frames, _) = check_rtp(&packets, ssrc_num);
    assert!(frames >= 20, "{frames} packs");
    p.platform.bye(&mut dialog).await.unwrap();
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(
        eof.is_ok(),
        "simulator closed the media connection after BYE"
    );

    sim.stop().await;
    eventually(2, "device offline", || async {
        !p.platform.is_online(&dev)
    })
    .await;
}

/// Reads RFC 4571 frames until `packs` packs (markers) arrived, for at most
/// 4 s (a session joining a running pacer waits for the next keyframe, up to
/// a GOP); returns the RTP packets and the stream.
async fn read_rfc4571(mut stream: TcpStream, packs: usize) -> (Vec<Bytes>, TcpStream) {
    let mut framer = Rfc4571Framer::new(Rfc4571Config::default());
    let mut packets = Vec::new();
    let mut markers = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while markers < packs
        && let Ok(Ok(n)) = tokio::time::timeout_at(until, stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        framer.push(&buf[..n]).unwrap();
        while let Some(p) = framer.next_packet() {
            let p = p.unwrap();
            if RtpPacket::parse(p.clone()).is_ok_and(|r| r.marker()) {
                markers += 1;
            }
            packets.push(p);
        }
    }
    assert_eq!(framer.stats().resyncs, 0, "clean RFC 4571 stream");
    (packets, stream)
}

/// The pacer on a paused clock: real-time pacing, keyframe first, and
/// continuous timestamps across the loop of the file.
#[tokio::test(start_paused = true)]
async fn pacer_loops_with_continuous_timestamps() {
    let source = Arc::new(
        media::MediaSource::load(
            &fixture("h264-es/128x128.h264"),
            None,
            25,
            PsQuirks::default(),
            CancellationToken::new(),
        )
        .unwrap(),
    );
    let mut rx = source.subscribe();
    let start = tokio::time::Instant::now();
    let first = rx.recv().await.unwrap();
    assert!(first.keyframe);
    assert_eq!(first.rtp_ts, 0);
    assert_eq!(&first.data[..4], &PS_PACK);
    // 155 frames: frame 160 is frame 5 of the second loop.
    let mut last = first.rtp_ts;
    for i in 1..=160u32 {
        let p = match rx.recv().await {
            Ok(p) => p,
            Err(e) => panic!("pack {i}: {e}"),
        };
        assert_eq!(p.rtp_ts, i * 3600, "pack {i}");
        assert_eq!(p.rtp_ts - last, 3600);
        last = p.rtp_ts;
        if i == 155 {
            assert!(p.keyframe, "the loop starts again at a keyframe");
        }
    }
    let elapsed = start.elapsed();
    assert!(
        (Duration::from_millis(6390)..=Duration::from_millis(6500)).contains(&elapsed),
        "paced at 25 fps: {elapsed:?}"
    );
    // No session left: the pacer stops.
    drop(rx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rx = source.subscribe();
    drop(rx);
}
