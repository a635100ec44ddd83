//! WHEP load client for benchmarks: `N` WebRTC sessions (str0m, one thread
//! each) play one stream for `SECS` seconds and report frames received.
//!
//!     cargo run --release --example whep_load -- http://127.0.0.1:8080 STREAM N SECS
//!
//! Used by benches/load/viewers.sh; not part of the gateway.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

fn post_offer(base: &str, stream: &str, sdp: &str) -> Result<String, String> {
    // A tiny blocking HTTP/1.1 POST, enough for a loopback gateway.
    use std::io::{Read, Write};
    let url = url::Url::parse(base).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    let mut s = std::net::TcpStream::connect((host, port)).map_err(|e| e.to_string())?;
    write!(
        s,
        "POST /live/{stream}/whep HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sdp}",
        sdp.len()
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 201") {
        return Err(head.lines().next().unwrap_or("").to_owned());
    }
    Ok(body.to_owned())
}

fn session(
    base: String,
    stream: String,
    secs: u64,
    frames: Arc<AtomicUsize>,
) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    let mut change = rtc.sdp_api();
    let video = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().ok_or("no offer")?;
    let answer = post_offer(&base, &stream, &offer.to_sdp_string())?;
    rtc.sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let wait = match rtc.poll_output().map_err(|e| e.to_string())? {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination);
                continue;
            }
            Output::Event(Event::MediaData(d)) if d.mid == video => {
                frames.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Output::Event(_) => continue,
        };
        let d = wait
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let _ = socket.set_read_timeout(Some(d));
        let input = match socket.recv_from(&mut buf) {
            Ok((n, from)) => match buf[..n].try_into() {
                Ok(contents) => Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source: from,
                        destination: local,
                        contents,
                    },
                ),
                Err(_) => continue,
            },
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: whep_load BASE_URL STREAM N SECS");
        std::process::exit(2);
    }
    let (base, stream) = (args[1].clone(), args[2].clone());
    let n: usize = args[3].parse().unwrap_or(1);
    let secs: u64 = args[4].parse().unwrap_or(20);
    let frames = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (b, s, f) = (base.clone(), stream.clone(), frames.clone());
            std::thread::spawn(move || session(b, s, secs, f))
        })
        .collect();
    let mut failed = 0;
    for h in handles {
        if let Ok(Err(e)) | Err(e) = h.join().map_err(|_| "panicked".to_owned()) {
            eprintln!("session failed: {e}");
            failed += 1;
        }
    }
    println!(
        "sessions={n} failed={failed} video_frames={} per_session={:.0}",
        frames.load(Ordering::Relaxed),
        frames.load(Ordering::Relaxed) as f64 / n.max(1) as f64
    );
}
