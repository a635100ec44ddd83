//! The `camgate` command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use camgate::app::App;
use camgate::config::{Config, ConfigArgs};
use camgate::gb::manscdp::Charset;
use camgate::ops::logging::Logging;
use camgate::sim::{AudioInput, PsQuirks, Sim, SimConfig, SipTransport};
use camgate::store::{Store, TokenRole, db};

/// camgate — GB28181 platform and media gateway for security cameras.
///
/// Without a subcommand, runs the gateway. Settings come from embedded
/// defaults, then `camgate.toml` (or --config), then CAMGATE_* environment
/// variables, then flags.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Copy the database to FILE while the gateway may keep running (SQLite
    /// online backup), then check the copy.
    Backup {
        #[arg(value_name = "FILE")]
        dest: PathBuf,
    },
    /// Replace the database with a backup. The gateway must be stopped; a
    /// backup from a newer camgate is refused.
    Restore {
        #[arg(value_name = "FILE")]
        src: PathBuf,
    },
    /// Check the configuration, that the listening ports are free and the
    /// database is sound; exit status 1 if anything is wrong.
    Check,
    /// Manage REST API bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage web UI users (passwords are read from standard input).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Simulate GB28181 devices: register N devices × M channels to a
    /// platform, keep them alive, answer queries, and stream PS over RTP
    /// from an H.264/H.265 file to every INVITE. Ctrl-C/SIGTERM ends every
    /// session with BYE and unregisters every device.
    Sim(Box<SimArgs>),
}

#[derive(clap::Args, Debug)]
struct SimArgs {
    /// The platform's SIP address.
    #[arg(long, value_name = "ADDR")]
    platform: SocketAddr,
    /// SIP transport: udp, or tcp (one connection per device).
    #[arg(long, default_value = "udp")]
    transport: SipTransport,
    /// Number of devices.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Channels per device (type 131 ids derived from the device prefix).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// 14 digits; device ids are this and a 6-digit counter from 000001.
    #[arg(long, default_value = "34020000001320")]
    device_prefix: String,
    /// Digest password of every device.
    #[arg(long, env = "CAMGATE_SIM_PASSWORD")]
    password: String,
    /// The platform's 20-digit id.
    #[arg(long, default_value = "34020000002000000001")]
    platform_id: String,
    /// SIP domain, also the digest realm.
    #[arg(long, default_value = "3402000000")]
    domain: String,
    /// Seconds between keepalives.
    #[arg(long, default_value_t = 60)]
    keepalive_secs: u64,
    /// Registration period asked for, seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// H.264 or H.265 Annex B elementary stream (.h264/.h265), looped.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Audio: `g711a` or `g711u` (a 1 kHz tone, or raw 8 kHz samples from
    /// PATH), or `aac-file PATH` (ADTS).
    #[arg(long, num_args = 1..=2, value_names = ["KIND", "PATH"])]
    audio: Option<Vec<String>>,
    /// Video frame rate of the input.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// Local address for SIP over UDP and media sockets; IP 0.0.0.0 means
    /// the address that routes to the platform.
    #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
    listen: SocketAddr,
    /// PS quirk: 6-byte pack stuffing with a rising counter (Hikvision).
    #[arg(long)]
    ps_stuffing_counter: bool,
    /// PS quirk: one PES per NAL unit.
    #[arg(long)]
    ps_pes_per_nal: bool,
    /// PS quirk: a private_stream_1 (0xBD) PES in every video pack.
    #[arg(long)]
    ps_private_bd: bool,
    /// PS quirk: no system header and no program stream map.
    #[arg(long)]
    ps_no_psm: bool,
    /// Answer y=0000000000 whatever SSRC was offered.
    #[arg(long)]
    answer_zero_ssrc: bool,
    /// Charset of MANSCDP bodies: gb18030 (declared GB2312) or utf-8.
    #[arg(long, default_value = "gb18030", value_parser = parse_charset)]
    charset: Charset,
    /// Catalog items per MESSAGE.
    #[arg(long, default_value_t = 2)]
    catalog_batch: usize,
}

fn parse_charset(s: &str) -> Result<Charset, String> {
    Charset::from_label(s).ok_or_else(|| "expected gb18030 or utf-8".into())
}

impl SimArgs {
    fn into_config(self) -> anyhow::Result<SimConfig> {
        let audio = match self.audio.as_deref() {
            None => None,
            Some([kind, rest @ ..]) => {
                let file = rest.first().map(PathBuf::from);
                Some(match kind.to_ascii_lowercase().as_str() {
                    "g711a" => AudioInput::G711 {
                        codec: camgate::codec::Codec::G711A,
                        file,
                    },
                    "g711u" => AudioInput::G711 {
                        codec: camgate::codec::Codec::G711U,
                        file,
                    },
                    "aac" | "aac-file" => AudioInput::AacFile(
                        file.context("--audio aac-file needs the path of an ADTS file")?,
                    ),
                    other => {
                        anyhow::bail!("--audio {other:?}: expected g711a, g711u or aac-file PATH")
                    }
                })
            }
            Some([]) => None,
        };
        let mut c = SimConfig::new(self.platform, self.input);
        c.transport = self.transport;
        c.devices = self.devices;
        c.channels = self.channels;
        c.device_prefix = self.device_prefix;
        c.password = self.password;
        c.platform_id = self.platform_id;
        c.domain = self.domain;
        c.keepalive = std::time::Duration::from_secs(self.keepalive_secs);
        c.expires = self.expires;
        c.audio = audio;
        c.fps = self.fps;
        c.listen = self.listen;
        c.quirks = PsQuirks {
            stuffing_counter: self.ps_stuffing_counter,
            pes_per_nal: self.ps_pes_per_nal,
            private_bd: self.ps_private_bd,
            no_psm: self.ps_no_psm,
        };
        c.answer_zero_ssrc = self.answer_zero_ssrc;
        c.charset = self.charset;
        c.catalog_batch = self.catalog_batch;
        Ok(c)
    }
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token and print it (it is shown only once).
    Create {
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: TokenRole,
    },
    /// List tokens (never their values).
    List,
    /// Delete a token by id.
    Revoke { id: i64 },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user; the password is the first line of standard input
    /// (`echo "$PASSWORD" | camgate user add admin --role admin`).
    Add {
        username: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: TokenRole,
    },
    /// List users.
    List,
    /// Set a user's password (first line of standard input); their sessions end.
    Passwd { username: String },
}

/// The first line of standard input, checked against the password policy.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    Ok(password)
}

fn user_command(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let store = Store::open_in_dir(&config.data_dir)?;
    match command {
        UserCommand::Add { username, role } => {
            let hash = camgate::api::hash_password(&password_from_stdin()?)?;
            let user = store.call_sync(|c| db::insert_user(c, &username, &hash, role))?;
            println!("user {} ({}) created", user.username, user.role.as_str());
        }
        UserCommand::List => {
            for u in store.call_sync(|c| db::list_users(c))? {
                let state = if u.disabled { "disabled" } else { "enabled" };
                println!("{}\t{}\t{}\t{state}", u.id, u.role.as_str(), u.username);
            }
        }
        UserCommand::Passwd { username } => {
            let hash = camgate::api::hash_password(&password_from_stdin()?)?;
            let user = store
                .call_sync(|c| db::user_by_name(c, &username))?
                .map(|(u, _)| u)
                .with_context(|| format!("no user named {username:?}"))?;
            let change = db::UserChange {
                password_hash: Some(hash),
                ..Default::default()
            };
            store.call_sync(|c| db::update_user(c, user.id, &change))?;
            println!(
                "password of {} changed; their sessions ended",
                user.username
            );
        }
    }
    store.close()?;
    Ok(())
}

fn parse_role(s: &str) -> Result<TokenRole, String> {
    match s {
        "admin" => Ok(TokenRole::Admin),
        "operator" => Ok(TokenRole::Operator),
        "viewer" => Ok(TokenRole::Viewer),
        _ => Err("expected admin, operator or viewer".into()),
    }
}

fn main() -> anyhow::Result<()> {
    camgate::ops::tune_allocator();
    let cli = Cli::parse();
    let config = Config::load(&cli.config).context("configuration")?;
    let logging = camgate::ops::logging::init(&config.log, config.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(config, cli.config, logging),
        Command::Sim(args) => sim(args.into_config()?),
        Command::Backup { dest } => {
            let db = config.data_dir.join("camgate.db");
            let info = camgate::store::ops::backup(&db, &dest)?;
            println!(
                "backed up {} to {} (schema {}, {} pages, integrity ok)",
                db.display(),
                dest.display(),
                info.schema_version,
                info.pages
            );
            Ok(())
        }
        Command::Restore { src } => {
            let info = camgate::store::ops::restore(&src, &config.data_dir)?;
            println!(
                "restored {} into {} (schema {}, {} pages); it is upgraded at the next start if older",
                src.display(),
                config.data_dir.display(),
                info.schema_version,
                info.pages
            );
            Ok(())
        }
        Command::Check => check(&config),
        Command::User { command } => user_command(&config, command),
        Command::Migrate => {
            let store = Store::open_in_dir(&config.data_dir)?;
            println!(
                "database {} at schema version {}",
                store.path().display(),
                camgate::store::schema_version()
            );
            store.close()?;
            Ok(())
        }
        Command::Token { command } => {
            let store = Store::open_in_dir(&config.data_dir)?;
            match command {
                TokenCommand::Create { name, role } => {
                    let token = store.call_sync(|c| {
                        let t = db::generate_token()?;
                        db::insert_token(c, &name, &t, role)?;
                        Ok(t)
                    })?;
                    println!("{token}");
                }
                TokenCommand::List => {
                    for t in store.call_sync(|c| db::list_tokens(c))? {
                        println!("{}\t{}\t{}\t{}…", t.id, t.role.as_str(), t.name, t.prefix);
                    }
                }
                TokenCommand::Revoke { id } => {
                    if !store.call_sync(|c| db::delete_token(c, id))? {
                        anyhow::bail!("no token with id {id}");
                    }
                }
            }
            store.close()?;
            Ok(())
        }
    }
}

/// `camgate check`: every problem on its own line, then the verdict.
fn check(config: &Config) -> anyhow::Result<()> {
    use std::net::{TcpListener, UdpSocket};
    let mut problems = 0;
    let mut report = |ok: bool, what: String| {
        println!("{} {what}", if ok { "ok   " } else { "ERROR" });
        if !ok {
            problems += 1;
        }
    };
    report(true, "configuration".into());
    let tcp = |a| TcpListener::bind(a).map(drop);
    let udp = |a| UdpSocket::bind(a).map(drop);
    let mut ports = vec![
        ("HTTP", config.http_listen, true, false),
        ("SIP", config.sip_listen, true, true),
        ("GB28181 media", config.rtp_listen, true, true),
    ];
    let rtsp = &config.rtsp_server;
    if rtsp.enabled {
        ports.push(("RTSP server", rtsp.listen, true, false));
        if rtsp.udp_rtp_port != 0 {
            for (name, port) in [
                ("RTSP server RTP", rtsp.udp_rtp_port),
                ("RTSP server RTCP", rtsp.udp_rtp_port.saturating_add(1)),
            ] {
                ports.push((name, SocketAddr::new(rtsp.listen.ip(), port), false, true));
            }
        }
    }
    if config.webrtc.enabled {
        ports.push(("WebRTC", config.webrtc.listen, false, true));
    }
    for (name, addr, tcp_too, udp_too) in ports {
        let mut errors = Vec::new();
        if tcp_too && let Err(e) = tcp(addr) {
            errors.push(format!("TCP: {e}"));
        }
        if udp_too && let Err(e) = udp(addr) {
            errors.push(format!("UDP: {e}"));
        }
        report(
            errors.is_empty(),
            if errors.is_empty() {
                format!("{name} port {addr} is free")
            } else {
                format!("{name} port {addr}: {}", errors.join("; "))
            },
        );
    }
    match camgate::store::ops::DataDirLock::acquire(&config.data_dir) {
        Ok(_) => report(
            true,
            format!("data directory {} is usable", config.data_dir.display()),
        ),
        Err(e) => report(false, e.to_string()),
    }
    let db = config.data_dir.join("camgate.db");
    if db.exists() {
        match camgate::store::ops::check_database(&db) {
            Ok(v) => report(
                true,
                format!(
                    "database {} passes the integrity check (schema {v} of {})",
                    db.display(),
                    camgate::store::schema_version()
                ),
            ),
            Err(e) => report(false, e.to_string()),
        }
    } else {
        report(
            true,
            format!("database {} will be created at start", db.display()),
        );
    }
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    Ok(())
}

fn run(config: Config, args: ConfigArgs, logging: Logging) -> anyhow::Result<()> {
    use camgate::ops::systemd;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("camgate")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        // Pinging starts before the (possibly slow) database migration.
        let watchdog = tokio_util::sync::CancellationToken::new();
        systemd::spawn_watchdog(watchdog.clone());
        let app = match App::start(config).await {
            Ok(app) => app,
            Err(e) => {
                systemd::status(&format!("failed to start: {e}"));
                return Err(e.into());
            }
        };
        let shutdown = app.shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            systemd::notify(&[("STOPPING", "1"), ("STATUS", "stopping")]);
            shutdown.cancel();
        });
        tokio::spawn(reload_on_sighup(app.clone(), args, logging));
        let served = app.serve().await;
        watchdog.cancel();
        served?;
        anyhow::Ok(())
    });
    if let Err(e) = &result {
        systemd::status(&format!("failed: {e:#}"));
    }
    result?;
    // Viewer connections still draining are cut here.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// SIGHUP (`systemctl reload camgate`): re-reads the configuration file and
/// applies what can change without dropping streams (`ops::reload`).
async fn reload_on_sighup(app: std::sync::Arc<App>, args: ConfigArgs, logging: Logging) {
    use camgate::ops::systemd;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; configuration reload disabled");
                return;
            }
        };
        let mut running = app.config.clone();
        while hup.recv().await.is_some() {
            let usec = systemd::monotonic_usec().to_string();
            systemd::notify(&[
                ("RELOADING", "1"),
                ("MONOTONIC_USEC", &usec),
                ("STATUS", "reloading the configuration"),
            ]);
            match Config::load(&args) {
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload failed; keeping the running settings");
                }
                Ok(new) => {
                    let outcome =
                        camgate::ops::reload::apply(&app, Some(&logging), &running, &new).await;
                    for failed in &outcome.failed {
                        tracing::warn!("configuration reload: {failed}");
                    }
                    if !outcome.needs_restart.is_empty() {
                        tracing::warn!(
                            settings = %outcome.needs_restart.join(", "),
                            "configuration reload: these settings changed but need a restart"
                        );
                    }
                    tracing::info!(
                        applied = %outcome.applied.join(", "),
                        "configuration reloaded"
                    );
                    running = new;
                }
            }
            systemd::notify(&[("READY", "1"), ("STATUS", &app.status_line())]);
        }
    }
    #[cfg(not(unix))]
    let _ = (app, args, logging);
}

fn sim(config: SimConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("camgate-sim")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let sim = Sim::start(config).await.context("starting the simulator")?;
        // SIGUSR1: every simulated device raises an alarm.
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
            let stop = wait_for_signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    Some(()) = usr1.recv() => sim.send_alarms().await,
                }
            }
        }
        #[cfg(not(unix))]
        wait_for_signal().await;
        sim.stop().await;
        anyhow::Ok(())
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the gateway");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
