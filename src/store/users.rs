//! Web UI users and their browser sessions (migration 0009).
//!
//! Passwords arrive here already hashed (Argon2id PHC strings, made by
//! `api::password`); session ids are stored as their SHA-256 only, so a copy
//! of the database lets nobody in.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoreError, TokenRole, unix_now};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub id: i64,
    pub username: String,
    pub role: TokenRole,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

const USER_COLUMNS: &str =
    "id, username, role, disabled, created_at, updated_at, last_login_at, password_hash";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(UserInfo, String)> {
    Ok((
        UserInfo {
            id: r.get(0)?,
            username: r.get(1)?,
            role: TokenRole::parse(&r.get::<_, String>(2)?),
            disabled: r.get::<_, i64>(3)? != 0,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
            last_login_at: r.get(6)?,
        },
        r.get(7)?,
    ))
}

pub fn count_users(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

pub fn insert_user(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    role: TokenRole,
) -> Result<UserInfo, StoreError> {
    let now = unix_now();
    let inserted = conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (username) DO NOTHING",
        params![username, password_hash, role.as_str(), now],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "a user named {username:?} already exists"
        )));
    }
    get_user(conn, conn.last_insert_rowid())?
        .ok_or_else(|| StoreError::Worker("inserted user vanished".into()))
}

pub fn get_user(conn: &Connection, id: i64) -> Result<Option<UserInfo>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            [id],
            user_row,
        )
        .optional()?
        .map(|(u, _)| u))
}

/// A user and their password hash, by name (case-insensitive).
pub fn user_by_name(
    conn: &Connection,
    username: &str,
) -> Result<Option<(UserInfo, String)>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
            [username],
            user_row,
        )
        .optional()?)
}

/// The password hash of user `id`.
pub fn user_password_hash(conn: &Connection, id: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT password_hash FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}

pub fn list_users(conn: &Connection) -> Result<Vec<UserInfo>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))?;
    let rows = stmt
        .query_map([], user_row)?
        .map(|r| r.map(|(u, _)| u))
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// What an admin may change about a user; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserChange {
    pub role: Option<TokenRole>,
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

/// Whether an enabled admin would be left besides user `id` (admin users
/// other than `id`, or admin API tokens): the last way in is never removed.
fn other_admin_exists(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id <> ?1)
              + (SELECT count(*) FROM api_tokens WHERE role = 'admin')",
        [id],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Applies `change` to user `id`; `None` if there is no such user. A changed
/// password, role or a disabled account ends the user's sessions, so the
/// change takes effect at once.
pub fn update_user(
    conn: &Connection,
    id: i64,
    change: &UserChange,
) -> Result<Option<UserInfo>, StoreError> {
    let Some(before) = get_user(conn, id)? else {
        return Ok(None);
    };
    let loses_admin = before.role == TokenRole::Admin
        && !before.disabled
        && (change.role.is_some_and(|r| r != TokenRole::Admin) || change.disabled == Some(true));
    if loses_admin && !other_admin_exists(conn, id)? {
        return Err(StoreError::Conflict(
            "this is the last admin; make another admin first".into(),
        ));
    }
    let tx = conn.unchecked_transaction()?;
    if let Some(role) = change.role {
        tx.execute(
            "UPDATE users SET role = ?2 WHERE id = ?1",
            params![id, role.as_str()],
        )?;
    }
    if let Some(hash) = &change.password_hash {
        tx.execute(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![id, hash],
        )?;
    }
    if let Some(disabled) = change.disabled {
        tx.execute(
            "UPDATE users SET disabled = ?2 WHERE id = ?1",
            params![id, i64::from(disabled)],
        )?;
    }
    let ends_sessions = change.role.is_some_and(|r| r != before.role)
        || change.password_hash.is_some()
        || change.disabled == Some(true);
    if ends_sessions {
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
    }
    tx.execute(
        "UPDATE users SET updated_at = ?2 WHERE id = ?1",
        params![id, unix_now()],
    )?;
    tx.commit()?;
    get_user(conn, id)
}

/// Deletes user `id` (and, by cascade, their sessions); `false` if there was
/// no such user.
pub fn delete_user(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    let Some(user) = get_user(conn, id)? else {
        return Ok(false);
    };
    if user.role == TokenRole::Admin && !user.disabled && !other_admin_exists(conn, id)? {
        return Err(StoreError::Conflict(
            "this is the last admin; make another admin first".into(),
        ));
    }
    Ok(conn.execute("DELETE FROM users WHERE id = ?1", [id])? > 0)
}

/// Who a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionOwner {
    User(i64),
    Token(i64),
}

/// A live session, as looked up by its cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub owner: SessionOwner,
    /// The user's name, or the token's name.
    pub name: String,
    pub role: TokenRole,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// How long sessions live (seconds).
#[derive(Clone, Copy, Debug)]
pub struct SessionLifetime {
    /// Without a request for this long, a session ends.
    pub idle: i64,
    /// A session ends this long after sign-in, however busy.
    pub absolute: i64,
}

pub fn insert_session(
    conn: &Connection,
    id_hash: &str,
    owner: SessionOwner,
    csrf_token: &str,
    lifetime: SessionLifetime,
) -> Result<i64, StoreError> {
    let now = unix_now();
    // Forget ended sessions while here; sign-ins are rare.
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
    let (user_id, token_id) = match owner {
        SessionOwner::User(id) => (Some(id), None),
        SessionOwner::Token(id) => (None, Some(id)),
    };
    let expires_at = now + lifetime.idle.min(lifetime.absolute);
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, token_id, csrf_token, created_at, last_seen_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        params![id_hash, user_id, token_id, csrf_token, now, expires_at],
    )?;
    if let SessionOwner::User(id) = owner {
        conn.execute(
            "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    }
    Ok(expires_at)
}

/// The live session with this id hash, its expiry slid forward (written at
/// most once a minute, to spare the SD card). Sessions of disabled users or
/// expired ones are `None`.
pub fn session(
    conn: &Connection,
    id_hash: &str,
    lifetime: SessionLifetime,
) -> Result<Option<SessionInfo>, StoreError> {
    let now = unix_now();
    let row = conn
        .query_row(
            "SELECT s.user_id, s.token_id, coalesce(u.username, t.name), coalesce(u.role, t.role),
                    s.csrf_token, s.created_at, s.last_seen_at, s.expires_at
             FROM sessions s
             LEFT JOIN users u ON u.id = s.user_id AND u.disabled = 0
             LEFT JOIN api_tokens t ON t.id = s.token_id
             WHERE s.id_hash = ?1",
            [id_hash],
            |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((user_id, token_id, name, role, csrf_token, created_at, last_seen_at, expires_at)) =
        row
    else {
        return Ok(None);
    };
    let (Some(name), Some(role)) = (name, role) else {
        // A disabled user's session.
        return Ok(None);
    };
    if expires_at <= now {
        return Ok(None);
    }
    let owner = match (user_id, token_id) {
        (Some(u), _) => SessionOwner::User(u),
        (None, Some(t)) => SessionOwner::Token(t),
        (None, None) => return Ok(None),
    };
    let mut expires_at = expires_at;
    if now - last_seen_at >= 60 {
        expires_at = (now + lifetime.idle).min(created_at + lifetime.absolute);
        conn.execute(
            "UPDATE sessions SET last_seen_at = ?2, expires_at = ?3 WHERE id_hash = ?1",
            params![id_hash, now, expires_at],
        )?;
    }
    Ok(Some(SessionInfo {
        owner,
        name,
        role: TokenRole::parse(&role),
        csrf_token,
        expires_at,
    }))
}

pub fn delete_session(conn: &Connection, id_hash: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])? > 0)
}

/// Ends every session of user `id` except `keep` (a password change keeps
/// the session it was made from).
pub fn delete_user_sessions(
    conn: &Connection,
    id: i64,
    keep: Option<&str>,
) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND id_hash <> coalesce(?2, '')",
        params![id, keep],
    )?)
}

/// Sets user `id`'s password and ends their sessions but `keep` (the one
/// the change was made from).
pub fn set_own_password(
    conn: &Connection,
    id: i64,
    password_hash: &str,
    keep: &str,
) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, password_hash, unix_now()],
    )?;
    delete_user_sessions(&tx, id, Some(keep))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    const LIFE: SessionLifetime = SessionLifetime {
        idle: 3600,
        absolute: 86400,
    };

    #[test]
    fn users_are_unique_case_insensitively_and_the_last_admin_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).unwrap();
        store
            .call_sync(|c| {
                // Migrations made no user and no token: only what we add.
                c.execute("DELETE FROM api_tokens", [])?;
                let alice = insert_user(c, "alice", "$argon2id$x", TokenRole::Admin)?;
                assert!(matches!(
                    insert_user(c, "ALICE", "h", TokenRole::Viewer),
                    Err(StoreError::Conflict(_))
                ));
                let (found, hash) = user_by_name(c, "Alice")?.unwrap();
                assert_eq!((found.id, hash.as_str()), (alice.id, "$argon2id$x"));
                // The only admin can be neither demoted, disabled nor deleted.
                let demote = UserChange {
                    role: Some(TokenRole::Viewer),
                    ..Default::default()
                };
                assert!(matches!(
                    update_user(c, alice.id, &demote),
                    Err(StoreError::Conflict(_))
                ));
                assert!(matches!(
                    delete_user(c, alice.id),
                    Err(StoreError::Conflict(_))
                ));
                let bob = insert_user(c, "bob", "h", TokenRole::Admin)?;
                let alice = update_user(c, alice.id, &demote)?.unwrap();
                assert_eq!(alice.role, TokenRole::Viewer);
                assert!(delete_user(c, alice.id)?);
                assert_eq!(list_users(c)?, vec![get_user(c, bob.id)?.unwrap()]);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn sessions_end_with_their_owner_and_on_password_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).unwrap();
        store
            .call_sync(|c| {
                let u = insert_user(c, "op", "h", TokenRole::Operator)?;
                insert_session(c, "s1", SessionOwner::User(u.id), "csrf1", LIFE)?;
                insert_session(c, "s2", SessionOwner::User(u.id), "csrf2", LIFE)?;
                let s = session(c, "s1", LIFE)?.unwrap();
                assert_eq!(
                    (s.name.as_str(), s.role, s.csrf_token.as_str()),
                    ("op", TokenRole::Operator, "csrf1")
                );
                assert!(get_user(c, u.id)?.unwrap().last_login_at.is_some());
                // Keep s1 (where the change was made), end s2.
                assert_eq!(delete_user_sessions(c, u.id, Some("s1"))?, 1);
                assert!(session(c, "s2", LIFE)?.is_none());
                // Disabling ends the rest.
                let off = UserChange {
                    disabled: Some(true),
                    ..Default::default()
                };
                update_user(c, u.id, &off)?;
                assert!(session(c, "s1", LIFE)?.is_none());
                // Token sessions end with the token.
                let t = crate::store::db::insert_token(c, "t", "cg_x", TokenRole::Viewer)?;
                insert_session(c, "s3", SessionOwner::Token(t.id), "c3", LIFE)?;
                assert_eq!(session(c, "s3", LIFE)?.unwrap().name, "t");
                crate::store::db::delete_token(c, t.id)?;
                assert!(session(c, "s3", LIFE)?.is_none());
                // An expired session is gone.
                insert_session(c, "s4", SessionOwner::User(u.id), "c4", LIFE)?;
                c.execute(
                    "UPDATE sessions SET expires_at = 1 WHERE id_hash = 's4'",
                    [],
                )?;
                assert!(session(c, "s4", LIFE)?.is_none());
                Ok(())
            })
            .unwrap();
    }
}
