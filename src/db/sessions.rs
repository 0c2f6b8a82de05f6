//! Queries on `user_session`. Every revocation also sends a `NOTIFY` in the same transaction, so
//! other instances drop the session from their caches the moment it is committed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Bytea, Nullable, SmallInt, Text, Timestamptz};

use super::DbError;
use super::models::{NewWxUser, WxUser};
use super::schema::user_session;
use super::sealed::SessionKeyCipher;
use crate::wechat::SessionKey;

/// The channel every instance LISTENs on.
pub const NOTIFY_CHANNEL: &str = "wxauth_session";

/// What a notification on `NOTIFY_CHANNEL` asks the caches to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Session(String),
    User(i64),
}

impl Revoked {
    pub fn payload(&self) -> String {
        match self {
            Revoked::Session(id) => format!("s:{id}"),
            Revoked::User(id) => format!("u:{id}"),
        }
    }

    pub fn parse(payload: &str) -> Option<Revoked> {
        match payload.split_once(':')? {
            ("s", id) if !id.is_empty() => Some(Revoked::Session(id.to_string())),
            ("u", id) => id.parse().ok().map(Revoked::User),
            _ => None,
        }
    }
}

fn notify(conn: &mut PgConnection, what: &Revoked) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(NOTIFY_CHANNEL)
        .bind::<Text, _>(what.payload())
        .execute(conn)?;
    Ok(())
}

/// A login's session, before it is stored.
pub struct NewSession {
    pub id: String,
    pub user_id: i64,
    pub session_key: SessionKey,
    pub expires_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
}

#[derive(Insertable)]
#[diesel(table_name = user_session)]
struct SessionRow<'a> {
    id: &'a str,
    user_id: i64,
    session_key_enc: Vec<u8>,
    expires_at: DateTime<Utc>,
    client_ip: &'a str,
    user_agent: &'a str,
}

fn clip(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

pub fn insert(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    new: &NewSession,
) -> Result<(), DbError> {
    diesel::insert_into(user_session::table)
        .values(SessionRow {
            id: &new.id,
            user_id: new.user_id,
            session_key_enc: cipher.seal(&new.id, &new.session_key),
            expires_at: new.expires_at,
            client_ip: clip(&new.client_ip, 63),
            user_agent: clip(&new.user_agent, 255),
        })
        .execute(conn)?;
    Ok(())
}

/// A login's session, before it is stored: its user is the one the same statement upserts.
pub struct LoginSession {
    pub id: String,
    pub session_key: SessionKey,
    pub expires_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
}

/// What a login stored: the user (created or updated), and whether the session went in with it.
#[derive(QueryableByName)]
pub struct LoginRecord {
    #[diesel(embed)]
    pub user: WxUser,
    /// `false` when the user may not log in (disabled or deleted): no session was stored.
    #[diesel(sql_type = Bool)]
    pub session_stored: bool,
}

/// The whole database part of a login in one statement, hence one commit: the user upsert (a
/// new openid creates the user; concurrent first logins meet at the unique constraint and end
/// in one row; an existing user's profile is left alone, since it is edited through its own
/// endpoint, but a unionid WeChat newly reports is kept) and the session insert, which happens
/// only for a usable user (status 0, not deleted).
/// Either both are committed or neither is: a dropped connection cannot leave a user without
/// the session of its login, or a session without its user.
pub fn login(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    user: &NewWxUser,
    session: &LoginSession,
) -> Result<LoginRecord, DbError> {
    let record = diesel::sql_query(
        "WITH u AS (
             INSERT INTO wx_user (username, nickname, avatar, gender, weixin_openid, unionid,
                                  last_login_time, last_login_ip, add_time, update_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (weixin_openid) DO UPDATE
                SET last_login_time = EXCLUDED.last_login_time,
                    last_login_ip = EXCLUDED.last_login_ip,
                    update_time = EXCLUDED.update_time,
                    unionid = coalesce(EXCLUDED.unionid, wx_user.unionid)
             RETURNING *
         ), s AS (
             INSERT INTO user_session (id, user_id, session_key_enc, expires_at, client_ip, user_agent)
             SELECT $11, u.id, $12, $13, $14, $15 FROM u WHERE u.status = 0 AND NOT u.deleted
             RETURNING id
         )
         SELECT u.*, EXISTS (SELECT 1 FROM s) AS session_stored FROM u",
    )
    .bind::<Text, _>(&user.username)
    .bind::<Text, _>(&user.nickname)
    .bind::<Text, _>(&user.avatar)
    .bind::<SmallInt, _>(user.gender)
    .bind::<Text, _>(&user.weixin_openid)
    .bind::<Nullable<Text>, _>(user.unionid.as_deref())
    .bind::<Nullable<Timestamptz>, _>(user.last_login_time)
    .bind::<Text, _>(&user.last_login_ip)
    .bind::<Timestamptz, _>(user.add_time)
    .bind::<Timestamptz, _>(user.update_time)
    .bind::<Text, _>(&session.id)
    .bind::<Bytea, _>(cipher.seal(&session.id, &session.session_key))
    .bind::<Timestamptz, _>(session.expires_at)
    .bind::<Text, _>(clip(&session.client_ip, 63))
    .bind::<Text, _>(clip(&session.user_agent, 255))
    .get_result(conn)?;
    Ok(record)
}

/// A session that may be used now: stored, not revoked, not expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSession {
    pub user_id: i64,
    pub expires_at: i64,
}

pub fn load_live(conn: &mut PgConnection, id: &str) -> Result<Option<LiveSession>, DbError> {
    let row: Option<(i64, DateTime<Utc>)> = user_session::table
        .find(id)
        .filter(user_session::revoked_at.is_null())
        .filter(user_session::expires_at.gt(diesel::dsl::now))
        .select((user_session::user_id, user_session::expires_at))
        .first(conn)
        .optional()?;
    Ok(row.map(|(user_id, expires_at)| LiveSession {
        user_id,
        expires_at: expires_at.timestamp(),
    }))
}

/// Logout. Answers whether the session was live.
pub fn revoke(conn: &mut PgConnection, id: &str) -> Result<bool, DbError> {
    conn.transaction(|conn| {
        let n = diesel::update(
            user_session::table
                .find(id)
                .filter(user_session::revoked_at.is_null()),
        )
        .set(user_session::revoked_at.eq(diesel::dsl::now))
        .execute(conn)?;
        notify(conn, &Revoked::Session(id.to_string()))?;
        Ok(n == 1)
    })
}

/// Logout everywhere, or a ban. Answers how many sessions were live.
pub fn revoke_all_of_user(conn: &mut PgConnection, user_id: i64) -> Result<usize, DbError> {
    conn.transaction(|conn| {
        let n = diesel::update(
            user_session::table
                .filter(user_session::user_id.eq(user_id))
                .filter(user_session::revoked_at.is_null()),
        )
        .set(user_session::revoked_at.eq(diesel::dsl::now))
        .execute(conn)?;
        notify(conn, &Revoked::User(user_id))?;
        Ok(n)
    })
}

/// Replaces a live session by a new one with the same session_key, atomically: of two refreshes
/// of one token, one wins and the other finds it revoked. `false` when the old one was not live.
pub fn refresh(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    old_id: &str,
    new: &NewSessionMeta,
) -> Result<bool, DbError> {
    conn.transaction(|conn| {
        let old: Option<(i64, Vec<u8>)> = user_session::table
            .find(old_id)
            .filter(user_session::revoked_at.is_null())
            .filter(user_session::expires_at.gt(diesel::dsl::now))
            .select((user_session::user_id, user_session::session_key_enc))
            .for_update()
            .first(conn)
            .optional()?;
        let Some((user_id, sealed)) = old.filter(|(uid, _)| *uid == new.user_id) else {
            return Ok(false);
        };
        let session_key = cipher.open(old_id, &sealed).ok_or(DbError::Sealed)?;
        insert(
            conn,
            cipher,
            &NewSession {
                id: new.id.clone(),
                user_id,
                session_key,
                expires_at: new.expires_at,
                client_ip: new.client_ip.clone(),
                user_agent: new.user_agent.clone(),
            },
        )?;
        diesel::update(user_session::table.find(old_id))
            .set(user_session::revoked_at.eq(diesel::dsl::now))
            .execute(conn)?;
        notify(conn, &Revoked::Session(old_id.to_string()))?;
        Ok(true)
    })
}

/// The new session of a refresh; its session_key comes from the old one.
pub struct NewSessionMeta {
    pub id: String,
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
}

/// The session_key of the user's newest login: WeChat keeps only that one valid.
pub fn newest_session_key(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    user_id: i64,
) -> Result<Option<SessionKey>, DbError> {
    let newest: Option<(String, Vec<u8>)> = user_session::table
        .filter(user_session::user_id.eq(user_id))
        .order(user_session::created_at.desc())
        .select((user_session::id, user_session::session_key_enc))
        .first(conn)
        .optional()?;
    match newest {
        None => Ok(None),
        Some((id, sealed)) => cipher.open(&id, &sealed).map(Some).ok_or(DbError::Sealed),
    }
}

/// Records that these sessions were used (batched by the SessionActor, not per request).
pub fn touch(conn: &mut PgConnection, ids: &[String]) -> Result<usize, DbError> {
    Ok(
        diesel::update(user_session::table.filter(user_session::id.eq_any(ids)))
            .set(user_session::last_seen_at.eq(diesel::dsl::now))
            .execute(conn)?,
    )
}

pub fn count_live(conn: &mut PgConnection) -> Result<i64, DbError> {
    Ok(user_session::table
        .filter(user_session::revoked_at.is_null())
        .filter(user_session::expires_at.gt(diesel::dsl::now))
        .count()
        .get_result(conn)?)
}

/// Deletes sessions that expired more than a day ago (the day keeps them visible for support).
pub fn sweep_expired(conn: &mut PgConnection) -> Result<usize, DbError> {
    Ok(
        diesel::sql_query("DELETE FROM user_session WHERE expires_at < now() - interval '1 day'")
            .execute(conn)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_junk_is_ignored() {
        for r in [Revoked::Session("abc".into()), Revoked::User(42)] {
            assert_eq!(Revoked::parse(&r.payload()), Some(r));
        }
        for junk in ["", "s:", "u:x", "x:1", "nothing"] {
            assert_eq!(Revoked::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn clipping_respects_characters() {
        assert_eq!(clip("微信用户", 2), "微信");
        assert_eq!(clip("ab", 5), "ab");
    }
}
