//! API bearer tokens. A token is `cg_` + 32 random bytes in hex; only its
//! SHA-256 is stored, so the database alone does not let anyone in.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{StoreError, unix_now};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    #[default]
    Admin,
    Operator,
    Viewer,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::Operator => "operator",
            TokenRole::Viewer => "viewer",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "operator" => TokenRole::Operator,
            "viewer" => TokenRole::Viewer,
            _ => TokenRole::Admin,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub role: TokenRole,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

pub fn hash_token(token: &str) -> String {
    crate::util::hex(&Sha256::digest(token.as_bytes()))
}

/// Makes a new random token.
pub fn generate() -> Result<String, StoreError> {
    let random = crate::util::random_hex(32)
        .map_err(|e| StoreError::Worker(format!("no randomness from the OS: {e}")))?;
    Ok(format!("cg_{random}"))
}

/// Characters of a token kept in clear: enough for an operator to tell tokens
/// apart and, for RTSP Digest, to serve as the username. 16 characters of a
/// generated token are `cg_` and 52 random bits: a collision among a
/// gateway's tokens is negligible, and [`digest_candidates`] tries every
/// token sharing a prefix anyway. (Tokens made before 0.1 kept 10.)
pub const PREFIX_LEN: usize = 16;

/// The Digest realm of the gateway's RTSP server (RFC 7616 §3.3).
pub const DIGEST_REALM: &str = "camgate";

fn prefix_of(token: &str) -> String {
    token.chars().take(PREFIX_LEN).collect()
}

pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM api_tokens", [], |r| r.get(0))?)
}

/// Stores `token` (hashed); returns its row. A token already stored is
/// returned as it is.
pub fn insert(
    conn: &Connection,
    name: &str,
    token: &str,
    role: TokenRole,
) -> Result<TokenInfo, StoreError> {
    let hash = hash_token(token);
    let prefix = prefix_of(token);
    let ha1 = crate::sip::digest::ha1(&prefix, DIGEST_REALM, token);
    conn.execute(
        "INSERT INTO api_tokens (name, token_hash, prefix, role, created_at, digest_ha1)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (token_hash) DO NOTHING",
        params![name, hash, prefix, role.as_str(), unix_now(), ha1],
    )?;
    let id: i64 = conn.query_row(
        "SELECT id FROM api_tokens WHERE token_hash = ?1",
        [hash],
        |r| r.get(0),
    )?;
    get(conn, id)?.ok_or_else(|| StoreError::Worker("inserted token vanished".into()))
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<TokenInfo>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, prefix, role, created_at, last_used_at FROM api_tokens WHERE id = ?1",
            [id],
            |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    prefix: r.get(2)?,
                    role: TokenRole::parse(&r.get::<_, String>(3)?),
                    created_at: r.get(4)?,
                    last_used_at: r.get(5)?,
                })
            },
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut stmt = conn.prepare("SELECT id FROM api_tokens ORDER BY id")?;
    let ids: Vec<i64> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get(conn, id)?);
    }
    Ok(out)
}

pub fn delete(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM api_tokens WHERE id = ?1", [id])? > 0)
}

/// Tokens usable for Digest with `prefix` as the username: (id, HA1) pairs.
/// More than one only if two tokens share a prefix; the caller tries each.
pub fn digest_candidates(
    conn: &Connection,
    prefix: &str,
) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, digest_ha1 FROM api_tokens WHERE prefix = ?1 AND digest_ha1 IS NOT NULL LIMIT 8",
    )?;
    let rows = stmt
        .query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Records a use of token `id` (at most once a minute) and returns it.
pub fn touch(conn: &Connection, id: i64) -> Result<Option<TokenInfo>, StoreError> {
    conn.execute(
        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
        params![id, unix_now()],
    )?;
    get(conn, id)
}

/// Looks a presented token up; records its use (at most once a minute, to
/// spare the SD card).
pub fn verify(conn: &Connection, token: &str) -> Result<Option<TokenInfo>, StoreError> {
    let hash = hash_token(token);
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM api_tokens WHERE token_hash = ?1",
            [&hash],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    touch(conn, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn tokens_are_stored_hashed_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).unwrap();
        store
            .call_sync(|c| {
                let t = generate()?;
                assert!(t.starts_with("cg_") && t.len() == 67);
                let info = insert(c, "ci", &t, TokenRole::Admin)?;
                assert_eq!(info.prefix, &t[..PREFIX_LEN]);
                let cands = digest_candidates(c, &info.prefix)?;
                assert_eq!(
                    cands,
                    vec![(
                        info.id,
                        crate::sip::digest::ha1(&info.prefix, DIGEST_REALM, &t)
                    )]
                );
                // A token from before migration 0005 has no HA1: Basic only.
                c.execute("UPDATE api_tokens SET digest_ha1 = NULL", [])?;
                assert!(digest_candidates(c, &info.prefix)?.is_empty());
                let stored: String =
                    c.query_row("SELECT token_hash FROM api_tokens", [], |r| r.get(0))?;
                assert_ne!(stored, t);
                assert!(!stored.contains(&t[3..]));
                assert_eq!(verify(c, &t)?.unwrap().id, info.id);
                assert!(verify(c, "cg_wrong")?.is_none());
                assert_eq!(insert(c, "again", &t, TokenRole::Admin)?.id, info.id);
                assert_eq!(count(c)?, 1);
                assert!(delete(c, info.id)?);
                assert!(verify(c, &t)?.is_none());
                Ok(())
            })
            .unwrap();
    }
}
