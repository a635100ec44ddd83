//! Test harness: the real `camgate` binary, the GStreamer RTSP camera, FFmpeg.
//!
//! Every peer is required: a missing tool fails the test with the command that
//! installs it (the README's test command installs them all).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "it-admin-token-0123456789abcdef";

/// Lines a child process printed, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn spawn_reader(&self, pipe: impl std::io::Read + Send + 'static, tee: Option<PathBuf>) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            let mut file = tee.and_then(|p| std::fs::File::create(p).ok());
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = file.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until a line satisfies `f`, returning it.
    pub fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.0.lock().unwrap().iter().find(|l| f(l)) {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; output so far:\n{}",
                    self.all().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running gateway on a loopback port of its own, with its own data dir.
pub struct Gateway {
    child: Option<Child>,
    pub base: String,
    /// SIP (UDP and TCP on the same port).
    pub sip: std::net::SocketAddr,
    /// The RTSP server (output), if enabled.
    pub rtsp: Option<std::net::SocketAddr>,
    pub logs: Lines,
    pub dir: tempfile::TempDir,
}

pub struct GatewayOptions {
    pub grace_secs: u64,
    pub start_timeout_secs: u64,
    pub admin_token: Option<&'static str>,
    /// Written to `camgate.toml` in the gateway's working directory.
    pub config_toml: String,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            grace_secs: 2,
            start_timeout_secs: 15,
            admin_token: Some(TOKEN),
            config_toml: String::new(),
        }
    }
}

impl Gateway {
    pub fn start(opts: GatewayOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, opts)
    }

    /// Starts a gateway on an existing data dir (restarts).
    pub fn start_in(dir: tempfile::TempDir, opts: GatewayOptions) -> Self {
        if !opts.config_toml.is_empty() {
            std::fs::write(dir.path().join("camgate.toml"), &opts.config_toml).unwrap();
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_camgate"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CAMGATE_DATA_DIR", dir.path().join("data"))
            .env("CAMGATE_HTTP_LISTEN", "127.0.0.1:0")
            .env("CAMGATE_SIP_LISTEN", "127.0.0.1:0")
            .env("CAMGATE_RTP_LISTEN", "127.0.0.1:0")
            .env("CAMGATE_RTSP_SERVER_LISTEN", "127.0.0.1:0")
            .env("CAMGATE_RTSP_SERVER_UDP_PORT", "0")
            .env("CAMGATE_WEBRTC_LISTEN", "127.0.0.1:0")
            .env("CAMGATE_LOG", "info,camgate=debug")
            .env("CAMGATE_ON_DEMAND_GRACE_SECS", opts.grace_secs.to_string())
            .env(
                "CAMGATE_START_TIMEOUT_SECS",
                opts.start_timeout_secs.to_string(),
            )
            .env("CAMGATE_RTSP_BACKOFF_MAX_SECS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(t) = opts.admin_token {
            cmd.env("CAMGATE_ADMIN_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("start camgate");
        let logs = Lines::default();
        let log_file = dir.path().join("camgate.log");
        logs.spawn_reader(child.stderr.take().unwrap(), Some(log_file));
        let line = logs.wait_for("camgate to listen", Duration::from_secs(20), |l| {
            l.contains("camgate listening")
        });
        let addr = line
            .rsplit("http=")
            .next()
            .and_then(|s| s.split_whitespace().next())
            .expect("listen address in log")
            .to_owned();
        let sip_line = logs.wait_for("SIP to listen", Duration::from_secs(5), |l| {
            l.contains("SIP listening")
        });
        let sip = sip_line
            .rsplit("sip=")
            .next()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .expect("SIP address in log");
        // Logged before "camgate listening" when the RTSP server is on.
        let rtsp = logs
            .all()
            .iter()
            .find(|l| l.contains("RTSP server listening"))
            .and_then(|l| l.rsplit("rtsp=").next())
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok());
        Self {
            child: Some(child),
            base: format!("http://{addr}"),
            sip,
            rtsp,
            logs,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = Self::client()
            .request(method, self.url(path))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON answer {text:?}: {e}"))
        };
        (status, json)
    }

    /// GET `path` with an optional bearer token: (status, JSON body or Null).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = Self::client().get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status().as_u16();
        let is_json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let body = if is_json {
            resp.json().await.expect("JSON body")
        } else {
            serde_json::Value::Null
        };
        (status, body)
    }

    pub async fn add_source(&self, name: &str, url: &str, transport: &str) {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/sources",
                Some(serde_json::json!({"name": name, "url": url, "transport": transport})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn source_state(&self, name: &str) -> String {
        let (status, body) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/sources/{name}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["status"]["state"].as_str().unwrap().to_owned()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        wait_child(&mut child, timeout).expect("camgate did not exit after SIGTERM")
    }

    /// Stops the gateway and hands back its data dir (for a restart).
    pub fn stop(mut self) -> tempfile::TempDir {
        self.terminate(Duration::from_secs(15));
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Stops the gateway (SIGTERM) and starts it again on the same data dir
    /// and configuration; its ports are new (they are picked at start).
    pub fn restart(self, opts: GatewayOptions) -> Self {
        Self::start_in(self.stop(), opts)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            if wait_child(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// GStreamer's RTSP server as a camera (tests/peers/rtsp_camera.py).
pub struct Camera {
    child: Child,
    pub port: u16,
    pub events: Lines,
}

impl Camera {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.exists(),
            "/usr/bin/python3 missing: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0"
        );
        let mut child = Command::new(python)
            .arg(repo().join("tests/peers/rtsp_camera.py"))
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/peers/rtsp_camera.py");
        let events = Lines::default();
        events.spawn_reader(child.stdout.take().unwrap(), None);
        let ready = events.wait_for("RTSP camera READY", Duration::from_secs(30), |l| {
            l.starts_with("READY")
        });
        let port = ready
            .rsplit('=')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .expect("port in READY line");
        Self {
            child,
            port,
            events,
        }
    }

    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }

    /// The session count the camera reported last.
    pub fn sessions(&self) -> usize {
        self.events
            .all()
            .iter()
            .rev()
            .find_map(|l| {
                l.strip_prefix("SESSIONS ")
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.events
            .all()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// Waits until the session count satisfies `f`.
    pub fn wait_sessions(&self, what: &str, timeout: Duration, f: impl Fn(usize) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(self.sessions()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for camera sessions: {what}; events:\n{}",
                self.events.all().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        signal(self.child.id(), "TERM");
        if wait_child(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Debian's FFmpeg (5.1).
pub fn ffmpeg_debian() -> PathBuf {
    let p = PathBuf::from("/usr/bin/ffmpeg");
    assert!(p.exists(), "Debian ffmpeg missing: apt-get install ffmpeg");
    p
}

/// FFmpeg 9 from the imageio-ffmpeg wheel: `CAMGATE_FFMPEG9` or asked from python3.
pub fn ffmpeg9() -> PathBuf {
    if let Some(p) = std::env::var_os("CAMGATE_FFMPEG9") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "imageio-ffmpeg missing: python3 -m pip install imageio-ffmpeg==0.8.1 ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs FFmpeg to decode `frames` video frames from `url`, returning its log.
/// Fails the test if FFmpeg fails or times out.
pub async fn ffmpeg_decode(ffmpeg: &Path, url: &str, frames: u32) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(ffmpeg)
            .args([
                "-hide_banner",
                "-nostdin",
                "-rw_timeout",
                "20000000",
                "-i",
                url,
            ])
            .args(["-frames:v", &frames.to_string(), "-f", "null", "-"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg timed out")
    .expect("run ffmpeg");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg failed on {url}:\n{log}");
    log
}

/// The number of video frames FFmpeg reports having processed.
pub fn decoded_frames(log: &str) -> u32 {
    log.rsplit("frame=")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A real fixture from `../shared/fixtures` (CAMGATE_REAL_FIXTURES).
pub fn fixture(rel: &str) -> PathBuf {
    let root = std::env::var_os("CAMGATE_REAL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/fixtures"));
    let p = root.join(rel);
    assert!(
        p.exists(),
        "fixture {} missing (set CAMGATE_REAL_FIXTURES)",
        p.display()
    );
    p
}
