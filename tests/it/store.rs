//! Schema upgrades in place.

use camgate::store::{Store, db, migrations, schema_version};
use rusqlite::Connection;

/// A database written by the first release (schema 1: sources and settings, no
/// tokens) upgrades in place: rows survive, new tables appear.
#[test]
fn database_from_schema_1_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("camgate.db");
    {
        let mut c = Connection::open(&path).unwrap();
        migrations().to_version(&mut c, 1).unwrap();
        c.execute(
            "INSERT INTO rtsp_sources (name, url, username, password, transport, on_demand, enabled, created_at, updated_at)
             VALUES ('old', 'rtsp://192.0.2.5/live', 'u', 'p', 'udp', 0, 1, 1700000000, 1700000000)",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ('media', '{\"on_demand_grace_secs\":5,\"start_timeout_secs\":9}', 1)",
            [],
        )
        .unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }
    let store = Store::open(&path).unwrap();
    store
        .call_sync(|c| {
            let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            assert_eq!(v as usize, schema_version());
            let s = db::get_source(c, "old")?.expect("source kept");
            assert_eq!(s.url, "rtsp://192.0.2.5/live");
            assert_eq!(s.password.as_deref(), Some("p"));
            assert!(!s.on_demand);
            let m: camgate::store::MediaSettings = db::get_setting(c, db::MEDIA_KEY)?.unwrap();
            assert_eq!(m.on_demand_grace_secs, 5);
            assert_eq!(db::count_tokens(c)?, 0, "token table created empty");
            Ok(())
        })
        .unwrap();
    store.close().unwrap();

    // Opening again is a no-op.
    Store::open(&path).unwrap().close().unwrap();
}

/// `camgate migrate` upgrades an old database from the command line.
#[test]
fn migrate_subcommand_upgrades_old_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut c = Connection::open(dir.path().join("camgate.db")).unwrap();
        migrations().to_version(&mut c, 1).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Connection::open(dir.path().join("camgate.db")).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v as usize, schema_version());
}
