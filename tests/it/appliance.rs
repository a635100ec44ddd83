//! camgate as an appliance: the systemd unit (checked by systemd-analyze),
//! the gateway run the way the unit runs it (unprivileged uid, only
//! CAP_NET_BIND_SERVICE, umask 077) talking sd_notify to a socket the test
//! holds, SIGHUP reload, the Debian package installed and purged with dpkg,
//! and a full disk under the database.
//!
//! Tests that change the machine (dpkg, a tmpfs mount) need root, as CI has;
//! without it they fail and say so rather than pass unseen.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Camera, Gateway, GatewayOptions, Lines, TOKEN, signal, wait_child};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("systemd/camgate.service")).unwrap()
}

/// Every value of `key=` in a unit file, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn require_root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root (CI runs as root); run the integration tests as root"
    );
}

/// The unit with ExecStart pointing at the binary under test, since verify
/// checks that the executable exists.
fn unit_for_test(unit: &str, dir: &Path) -> PathBuf {
    let text = unit.replace("/usr/bin/camgate", env!("CARGO_BIN_EXE_camgate"));
    let path = dir.join("camgate.service");
    std::fs::write(&path, text).unwrap();
    path
}

fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("run systemd-analyze (apt-get install systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The unit, and the fixed-user variant the Debian package ships, pass
/// `systemd-analyze verify` without a word and keep the sandbox's exposure
/// score where docs/deploy.md records it.
#[test]
fn units_pass_systemd_analyze() {
    let dynamic = unit_text();
    let fixed = std::fs::read_to_string(repo().join("debian/camgate.service")).unwrap();
    assert_eq!(
        fixed,
        dynamic.replace("\nDynamicUser=yes\n", "\nUser=camgate\nGroup=camgate\n"),
        "debian/camgate.service must be systemd/camgate.service with User=camgate \
         instead of DynamicUser=yes"
    );
    for (name, unit) in [("dynamic user", &dynamic), ("fixed user", &fixed)] {
        let dir = tempfile::tempdir().unwrap();
        let path = unit_for_test(unit, dir.path());
        let (ok, text) = systemd_analyze(&["verify"], &path);
        assert!(ok && text.trim().is_empty(), "{name}: verify says:\n{text}");
        let (ok, text) = systemd_analyze(&["security", "--offline=yes"], &path);
        assert!(ok, "{name}: {text}");
        let score: f64 = text
            .lines()
            .find_map(|l| {
                l.split("Overall exposure level for camgate.service:")
                    .nth(1)
            })
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
        assert!(score <= 2.0, "{name}: exposure {score} (was 2.0):\n{text}");
    }
}

/// The shipped default configuration is valid and changes no default.
#[test]
fn default_config_file_parses() {
    let text = std::fs::read_to_string(repo().join("systemd/camgate.toml")).unwrap();
    let file: camgate::config::FileConfig = toml::from_str(&text).unwrap();
    let c = camgate::config::Config::resolve(&Default::default(), file).unwrap();
    assert_eq!(c.http_listen.port(), 8080);
    assert_eq!(c.sip_listen.port(), 5060);
}

/// Datagrams received on a notification socket.
#[derive(Clone, Default)]
struct Notifications(Arc<Mutex<Vec<Vec<u8>>>>);

impl Notifications {
    fn listen(sock: UnixDatagram) -> Self {
        let n = Self::default();
        let inner = n.0.clone();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            // Ends when the test's Arc is the only one left.
            while Arc::strong_count(&inner) > 1 {
                if let Ok(len) = sock.recv(&mut buf) {
                    inner.lock().unwrap().push(buf[..len].to_vec());
                }
            }
        });
        n
    }

    fn all(&self) -> Vec<String> {
        self.raw()
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect()
    }

    fn raw(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, f: impl Fn(&str) -> bool) -> usize {
        self.all().iter().filter(|m| f(m)).count()
    }

    fn wait(&self, what: &str, timeout: Duration, f: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(&self.all()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; notifications:\n{:#?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn has(msg: &str, assignment: &str) -> bool {
    msg.lines().any(|l| l == assignment)
}

/// A low port nobody uses, to show CAP_NET_BIND_SERVICE works.
fn free_privileged_port() -> u16 {
    (700..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1000")
}

fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
        })
}

/// Runs the binary as the unit does — its ExecStart arguments and
/// Environment=, umask 077, and as root: uid/gid 65534 with only
/// CAP_NET_BIND_SERVICE (bounding, ambient), no_new_privs, dialout as the
/// supplementary group — with `NOTIFY_SOCKET` and `WATCHDOG_USEC` as systemd
/// sets them. The read-only root and namespaces of the sandbox need systemd
/// itself; `systemd-analyze` checks those settings above.
#[tokio::test(flavor = "multi_thread")]
async fn notifies_readiness_watchdog_reload_and_stopping() {
    let unit = unit_text();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("state");
    std::fs::create_dir(&data).unwrap();
    let root = is_root();
    let http_port = if root { free_privileged_port() } else { 0 };
    if root {
        std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    }
    let config = dir.path().join("camgate.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:{http_port}\"\n{extra}\n\
                 [sip]\nlisten = \"127.0.0.1:0\"\n[gb_media]\nlisten = \"127.0.0.1:0\"\nport_range = []\n\
                 [rtsp_server]\nlisten = \"127.0.0.1:0\"\nudp_rtp_port = 0\n\
                 [webrtc]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    write_config("");
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let notes = Notifications::listen(sock);

    // ExecStart's arguments with the test's binary and configuration.
    let exec = unit_values(&unit, "ExecStart");
    let mut args: Vec<String> = exec[0].split_whitespace().map(str::to_owned).collect();
    assert_eq!(args[0], "/usr/bin/camgate");
    for a in &mut args {
        if a == "/etc/camgate/camgate.toml" {
            *a = config.to_str().unwrap().to_owned();
        }
    }
    let mut cmd = if root {
        let dialout = group_id("dialout").unwrap_or(20);
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            &format!("--groups={dialout}"),
            "--no-new-privs",
            "--inh-caps=-all,+net_bind_service",
            "--ambient-caps=-all,+net_bind_service",
            "--bounding-set=-all,+net_bind_service",
            "--",
            env!("CARGO_BIN_EXE_camgate"),
        ]);
        c
    } else {
        // Already unprivileged: run it directly.
        Command::new(env!("CARGO_BIN_EXE_camgate"))
    };
    cmd.args(&args[1..])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for e in unit_values(&unit, "Environment") {
        let (k, v) = e.split_once('=').unwrap();
        let v = v.replace("/var/lib/camgate", data.to_str().unwrap());
        cmd.env(k, v);
    }
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "2000000")
        .env("CAMGATE_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask is async-signal-safe and touches only this process.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o077);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("start camgate as the unit does");
    let logs = Lines::default();
    logs.spawn_reader(child.stderr.take().unwrap(), None);

    notes.wait("READY=1", Duration::from_secs(30), |m| {
        m.iter().any(|m| has(m, "READY=1"))
    });
    let all = notes.all();
    // Watchdog pings may come first: they start before the database opens.
    let first = all.iter().find(|m| !has(m, "WATCHDOG=1")).unwrap();
    assert!(
        has(first, "STATUS=opening the database"),
        "notifications: {all:?}"
    );
    let ready = all.iter().find(|m| has(m, "READY=1")).unwrap();
    assert!(ready.contains("STATUS=serving: HTTP "), "{ready}");
    // Ready means HTTP answers.
    let line = logs.wait_for("listening", Duration::from_secs(5), |l| {
        l.contains("camgate listening")
    });
    let http = line.rsplit("http=").next().unwrap().trim().to_owned();
    if root {
        assert_eq!(http, format!("127.0.0.1:{http_port}"));
    }
    let health = reqwest::get(format!("http://{http}/api/v1/health"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // WATCHDOG_USEC=2 s: a ping every second.
    notes.wait("three watchdog pings", Duration::from_secs(15), |m| {
        m.iter().filter(|m| has(m, "WATCHDOG=1")).count() >= 3
    });

    // SIGHUP: the log filter and CORS apply live; a new HTTP port needs a
    // restart. The protocol: RELOADING=1 with MONOTONIC_USEC, then READY=1.
    let readies = notes.count(|m| has(m, "READY=1"));
    write_config("cors_allowed_origins = [\"https://vms.example\"]\n");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replacen(
            &format!("listen = \"127.0.0.1:{http_port}\""),
            "listen = \"127.0.0.1:1\"",
            1,
        ) + "[log]\nfilter = \"debug\"\n",
    )
    .unwrap();
    signal(child.id(), "HUP");
    notes.wait("READY=1 after the reload", Duration::from_secs(10), |m| {
        m.iter().filter(|m| has(m, "READY=1")).count() > readies
    });
    let reloading = notes.all().into_iter().find(|m| has(m, "RELOADING=1"));
    let reloading = reloading.expect("RELOADING=1 sent");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let applied = logs.wait_for("reload", Duration::from_secs(5), |l| {
        l.contains("configuration reloaded")
    });
    assert!(
        applied.contains("log filter") && applied.contains("http.cors_allowed_origins"),
        "{applied}"
    );
    let restart = logs.wait_for("needs restart", Duration::from_secs(5), |l| {
        l.contains("need a restart")
    });
    assert!(restart.contains("http.listen"), "{restart}");
    let cors = Gateway::client()
        .get(format!("http://{http}/api/v1/health"))
        .header("origin", "https://vms.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cors.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://vms.example"),
        "CORS origins not reloaded"
    );

    // The database is the service user's alone.
    let db = std::fs::metadata(data.join("camgate.db")).unwrap();
    assert_eq!(db.mode() & 0o077, 0, "database mode {:o}", db.mode());
    if root {
        assert_eq!((db.uid(), db.gid()), (65534, 65534));
    }

    // systemctl stop: STOPPING=1, exit 0 within TimeoutStopSec.
    let stop_secs: u64 = unit_values(&unit, "TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .unwrap();
    signal(child.id(), "TERM");
    let status =
        tokio::task::block_in_place(|| wait_child(&mut child, Duration::from_secs(stop_secs)));
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no exit within TimeoutStopSec={stop_secs}s")
    });
    assert!(status.success(), "{status:?}\n{}", logs.all().join("\n"));
    assert!(
        notes.count(|m| has(m, "STOPPING=1")) == 1,
        "{:#?}",
        notes.all()
    );
}

/// `cargo deb` packages the binary under test (copied where `--no-build`
/// looks for a release binary: a release build would double CI's compile
/// time), then dpkg installs, removes and purges it. No systemd runs in CI's
/// container: the maintainer scripts must still succeed.
#[test]
fn debian_package_installs_removes_and_purges() {
    require_root("dpkg -i");
    let status = Command::new("dpkg-query")
        .args(["-W", "camgate"])
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "a camgate package is already installed on this machine; remove it first"
    );
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_camgate"),
        target.join("release/camgate"),
    )
    .unwrap();
    let out = Command::new("cargo")
        .args(["deb", "--no-build", "--fast", "-o"])
        .arg(work.path())
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo deb (cargo install --locked cargo-deb)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo deb failed:\n{text}");
    let deb = text
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no .deb named in:\n{text}"));

    let dpkg = |args: &[&str]| {
        let out = Command::new("dpkg").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "dpkg {args:?}:\n{text}");
    };
    dpkg(&["-i", deb.to_str().unwrap()]);
    // Purge even if an assertion below fails.
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["-P", "camgate"]).output();
        }
    }
    let _purge = Purge;
    let installed = Command::new("/usr/bin/camgate")
        .arg("--version")
        .output()
        .unwrap();
    assert!(installed.status.success());
    for f in [
        "/usr/lib/systemd/system/camgate.service",
        "/etc/camgate/camgate.toml",
        "/usr/share/doc/camgate/copyright",
        "/usr/share/doc/camgate/deploy.md",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/camgate.service").unwrap();
    assert_eq!(unit_values(&unit, "User"), ["camgate"]);
    assert!(unit_values(&unit, "DynamicUser").is_empty());
    let conffiles = Command::new("dpkg-query")
        .args(["-W", "-f=${Conffiles}", "camgate"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&conffiles.stdout).contains("/etc/camgate/camgate.toml"));
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("camgate:"))
        .expect("camgate user created");
    let uid: u32 = user.split(':').nth(2).unwrap().parse().unwrap();
    let state = std::fs::metadata("/var/lib/camgate").unwrap();
    assert_eq!((state.uid(), state.mode() & 0o777), (uid, 0o700));
    let config = std::fs::metadata("/etc/camgate/camgate.toml").unwrap();
    assert_eq!(config.mode() & 0o777, 0o640);
    // Enabled for the next boot, though no systemd runs here.
    assert!(Path::new("/etc/systemd/system/multi-user.target.wants/camgate.service").exists());

    dpkg(&["-r", "camgate"]);
    assert!(!Path::new("/usr/bin/camgate").exists());
    assert!(
        Path::new("/etc/camgate/camgate.toml").exists(),
        "remove keeps conffiles"
    );
    dpkg(&["-P", "camgate"]);
    for gone in [
        "/etc/camgate",
        "/var/lib/camgate",
        "/etc/systemd/system/multi-user.target.wants/camgate.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.lines().any(|l| l.starts_with("camgate:")));
}

/// A tmpfs mount removed on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs at {}", at.display());
        Self(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system at `dir` until a write fails.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    // Whatever is left below a block too.
    while f.write_all(&block[..512]).is_ok() {}
    let _ = f.sync_all();
    path
}

/// The database's disk fills up while a camera streams: the stream goes on,
/// API writes answer 507 `storage_full` and change nothing, writes work again
/// once space is freed, and `camgate check` finds the database sound.
#[tokio::test(flavor = "multi_thread")]
async fn full_disk_keeps_streaming_and_refuses_writes_cleanly() {
    require_root("mounting a small tmpfs for the database");
    let cam = Camera::start();
    let dir = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&dir.path().join("data"), "4m");
    let gw = Gateway::start_in(dir, GatewayOptions::default());
    gw.add_source("front", &cam.url("h264"), "tcp").await;
    let mut viewer = Gateway::client()
        .get(gw.url("/live/front.flv"))
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status().as_u16(), 200);
    viewer.chunk().await.unwrap().expect("FLV bytes");
    // A GB28181 device too: its events are written while the disk is full.
    crate::gb_sim::setup(&gw).await;
    let mut sim =
        crate::gb_sim::Sim::start(&gw, &crate::common::fixture("h264-es/240x320.h264"), &[]);
    crate::gb_sim::first_camera(&gw).await;

    let data = gw.dir.path().join("data");
    let filler = fill(&data);
    // The WAL may still have room for a few small writes: write until the
    // disk says no (bounded).
    let mut refused = None;
    for i in 0..2000 {
        let (status, body) = gw
            .api(
                reqwest::Method::POST,
                "/api/v1/tokens",
                Some(serde_json::json!({"name": format!("fill-{i}-{}", "x".repeat(80)), "role": "viewer"})),
            )
            .await;
        match status {
            201 => continue,
            _ => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("a write refused on a full disk");
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk holding the database is full"),
        "{body}"
    );
    // Reads still work; the stream still flows.
    let (status, _) = gw.api(reqwest::Method::GET, "/api/v1/sources", None).await;
    assert_eq!(status, 200);
    let mut more = 0usize;
    while more < 64 * 1024 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), viewer.chunk())
            .await
            .expect("stream stalled on a full disk")
            .unwrap()
            .expect("stream ended on a full disk");
        more += chunk.len();
    }

    // The device leaves while the disk is full: its event cannot be
    // stored yet, and is kept for later.
    crate::common::signal(sim.child.id(), "TERM");
    let _ = crate::common::wait_child(&mut sim.child, Duration::from_secs(10));
    gw.logs
        .wait_for("the refused event", Duration::from_secs(10), |l| {
            l.contains("cannot store event; kept in memory and retried")
        });
    let offline = |gw: &Gateway| {
        let gw_url = gw.url("/api/v1/events?kind=device_offline");
        async move {
            let r = Gateway::client()
                .get(gw_url)
                .bearer_auth(crate::common::TOKEN)
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    assert_eq!(offline(&gw).await.as_array().map(Vec::len), Some(0));

    std::fs::remove_file(filler).unwrap();
    // Space again: the kept event is stored within seconds, in order.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ev = offline(&gw).await;
        if ev.as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(ev[0]["device_id"], crate::gb_sim::SIM_DEVICE, "{ev}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the kept event was never stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "after", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    drop(viewer);
    let dir = gw.stop();
    let out = Command::new(env!("CARGO_BIN_EXE_camgate"))
        .arg("check")
        .env_clear()
        .env("CAMGATE_DATA_DIR", dir.path().join("data"))
        .env("CAMGATE_HTTP_LISTEN", "127.0.0.1:0")
        .env("CAMGATE_SIP_LISTEN", "127.0.0.1:0")
        .env("CAMGATE_RTP_LISTEN", "127.0.0.1:0")
        // Tests run in parallel: no default ports (RTSP 8554/8000, WebRTC 8189).
        .env("CAMGATE_RTSP_SERVER_LISTEN", "127.0.0.1:0")
        .env("CAMGATE_RTSP_SERVER_UDP_PORT", "0")
        .env("CAMGATE_WEBRTC_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passes the integrity check"), "{text}");
    drop(mount);
    drop(dir);
}

/// `[log] format = "journald"`: records reach the journal socket as native
/// journal entries, each tracing field its own journal field. The socket is
/// the test's, bind-mounted over /run/systemd/journal in a private mount
/// namespace (unshare), so a real journald on the machine is not involved.
#[test]
fn journald_records_carry_structured_fields() {
    require_root("bind-mounting a test socket over /run/systemd/journal");
    std::fs::create_dir_all("/run/systemd/journal").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let sock = UnixDatagram::bind(journal.join("socket")).unwrap();
    let records = Notifications::listen(sock);
    let data = dir.path().join("data");
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount --bind \"$0\" /run/systemd/journal && exec \"$1\" run")
        .arg(&journal)
        .arg(env!("CARGO_BIN_EXE_camgate"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CAMGATE_DATA_DIR", &data)
        .env("CAMGATE_HTTP_LISTEN", "127.0.0.1:0")
        .env("CAMGATE_SIP_LISTEN", "127.0.0.1:0")
        .env("CAMGATE_RTP_LISTEN", "127.0.0.1:0")
        // Tests run in parallel: no default ports (RTSP 8554/8000, WebRTC 8189).
        .env("CAMGATE_RTSP_SERVER_LISTEN", "127.0.0.1:0")
        .env("CAMGATE_RTSP_SERVER_UDP_PORT", "0")
        .env("CAMGATE_WEBRTC_LISTEN", "127.0.0.1:0")
        .env("CAMGATE_ADMIN_TOKEN", TOKEN)
        .env("CAMGATE_LOG_FORMAT", "journald")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare (util-linux)");
    let stderr = Lines::default();
    stderr.spawn_reader(child.stderr.take().unwrap(), None);
    let listening = |records: &Notifications| {
        records.raw().iter().map(|d| journal_fields(d)).find(|f| {
            f.iter()
                .any(|(k, v)| k == "MESSAGE" && v == "camgate listening")
        })
    };
    records.wait("the listening record", Duration::from_secs(30), |_| {
        listening(&records).is_some()
    });
    signal(child.id(), "TERM");
    let status = wait_child(&mut child, Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let fields = listening(&records).unwrap();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("SYSLOG_IDENTIFIER"), Some("camgate"), "{fields:?}");
    // info is syslog's 6, as `journalctl -p info` expects.
    assert_eq!(field("PRIORITY"), Some("6"), "{fields:?}");
    assert_eq!(field("TARGET"), Some("camgate::app"), "{fields:?}");
    assert!(
        field("HTTP").is_some_and(|v| v.starts_with("127.0.0.1:")),
        "the http field as HTTP=: {fields:?}"
    );
    // Nothing went to stderr as text: the journal took every record.
    assert!(!stderr.contains("camgate listening"), "{:?}", stderr.all());
}

/// Fields of one journal native-protocol datagram: `KEY=value\n`, or
/// `KEY\n` + 64-bit little-endian length + value + `\n` for any value
/// (systemd's "Native Journal Protocol").
fn journal_fields(mut d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(nl) = d.iter().position(|&b| b == b'\n') {
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            ));
            d = &d[nl + 1..];
        } else {
            let rest = &d[nl + 1..];
            let Some(len) = rest.get(..8) else { break };
            let len = u64::from_le_bytes(len.try_into().unwrap()) as usize;
            let Some(value) = rest.get(8..8 + len) else {
                break;
            };
            out.push((
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
            d = rest.get(8 + len + 1..).unwrap_or_default();
        }
    }
    out
}
