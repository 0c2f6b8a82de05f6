//! Queries on `user_session`. Every revocation also sends a `NOTIFY` in the same transaction, so
//! other instances drop the session from their caches the moment it is committed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Nullable, SmallInt, Text, Timestamptz};

use super::DbError;
use super::models::NewWxUser;
use super::schema::{user_session, wx_user};
use super::sealed::SessionKeyCipher;
use crate::domain::{
    LiveSession, LoginRecord, NewSessionMeta, Revoked, SessionEnd, SignIn, user_status,
};
use crate::wechat::SessionKey;

/// The channel every instance LISTENs on.
pub(crate) const NOTIFY_CHANNEL: &str = "wxauth_session";

/// As a notification on `NOTIFY_CHANNEL` carries it.
impl Revoked {
    pub(crate) fn payload(&self) -> String {
        match self {
            Revoked::Session(id) => format!("s:{id}"),
            Revoked::User(id) => format!("u:{id}"),
        }
    }

    pub(crate) fn parse(payload: &str) -> Option<Revoked> {
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

fn clip(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Stores the session if its user may hold one (status 0, not deleted); `false` when not. The
/// check and the insert are one statement holding a share lock on the user's row, so a
/// concurrent disable or deletion request either waits for this session and then revokes it (the
/// `wx_user_revoke_sessions` trigger), or commits first and this session is never stored.
pub fn insert(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    new: &NewSession,
) -> Result<bool, DbError> {
    let stored = diesel::sql_query(
        "INSERT INTO user_session (id, user_id, session_key_enc, expires_at, client_ip, user_agent) \
         SELECT $1, u.id, $3, $4, $5, $6 FROM wx_user u \
         WHERE u.id = $2 AND u.status = 0 AND NOT u.deleted \
         FOR SHARE OF u",
    )
    .bind::<Text, _>(&new.id)
    .bind::<BigInt, _>(new.user_id)
    .bind::<Bytea, _>(cipher.seal(&new.id, &new.session_key))
    .bind::<Timestamptz, _>(new.expires_at)
    .bind::<Text, _>(clip(&new.client_ip, 63))
    .bind::<Text, _>(clip(&new.user_agent, 255))
    .execute(conn)?;
    Ok(stored == 1)
}

/// The whole database part of a login in one statement, hence one commit: the user upsert (a
/// new openid creates the user; concurrent first logins meet at the unique constraint and end
/// in one row; an existing user's profile is left alone, since it is edited through its own
/// endpoint, but a unionid WeChat newly reports is kept) and the session insert, which happens
/// only for a usable user (status 0, not deleted).
/// Either both are committed or neither is: a dropped connection cannot leave a user without
/// the session of its login, or a session without its user.
pub(crate) fn login(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    login: &SignIn,
) -> Result<LoginRecord, DbError> {
    let user = NewWxUser {
        username: format!("wx_{}", crate::random::token_hex(8)),
        nickname: login.profile.nickname.clone(),
        avatar: login.profile.avatar.clone(),
        gender: login.profile.gender,
        weixin_openid: login.openid.clone(),
        unionid: login.unionid.clone(),
        last_login_time: Some(login.at),
        last_login_ip: clip(&login.client_ip, 63).to_string(),
        add_time: login.at,
        update_time: login.at,
    };
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
    .bind::<Text, _>(&login.session_id)
    .bind::<Bytea, _>(cipher.seal(&login.session_id, &login.session_key))
    .bind::<Timestamptz, _>(login.expires_at)
    .bind::<Text, _>(clip(&login.client_ip, 63))
    .bind::<Text, _>(clip(&login.user_agent, 255))
    .get_result(conn)?;
    Ok(record)
}

/// When a session dies: at its expiry, and at the latest `max_lifetime` after its login
/// (`created_at`, which a refresh carries over), so a lowered `SESSION_MAX_LIFETIME_SECS` also
/// ends the sessions issued before it was lowered.
pub(crate) fn end_of(
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    max_lifetime: Duration,
) -> DateTime<Utc> {
    let cap = chrono::Duration::from_std(max_lifetime)
        .ok()
        .and_then(|d| created_at.checked_add_signed(d))
        .unwrap_or(expires_at);
    expires_at.min(cap)
}

/// The session if it is live: stored, not revoked, not expired, and younger than
/// `max_lifetime`. Its `expires_at` is the earlier of the two ends. Otherwise why it is not.
pub(crate) fn load_live(
    conn: &mut PgConnection,
    id: &str,
    max_lifetime: Duration,
) -> Result<Result<LiveSession, SessionEnd>, DbError> {
    let row: Option<(i64, DateTime<Utc>, DateTime<Utc>)> = user_session::table
        .find(id)
        .filter(user_session::revoked_at.is_null())
        .filter(user_session::expires_at.gt(diesel::dsl::now))
        .filter(user_session::created_at.gt(born_after(max_lifetime)))
        .select((
            user_session::user_id,
            user_session::created_at,
            user_session::expires_at,
        ))
        .first(conn)
        .optional()?;
    match row {
        Some((user_id, created_at, expires_at)) => Ok(Ok(LiveSession {
            user_id,
            expires_at: end_of(created_at, expires_at, max_lifetime).timestamp(),
        })),
        None => why_not_live(conn, id).map(Err),
    }
}

/// Why a session `load_live` did not find live is not: read only for a token whose signature
/// verified, so it tells nothing to whoever cannot sign. A revocation of a session whose
/// account is no longer usable is put down to the account (its trigger revoked it), and wins
/// over expiry: logging in again will not help.
fn why_not_live(conn: &mut PgConnection, id: &str) -> Result<SessionEnd, DbError> {
    let row: Option<(bool, Option<(i16, bool)>)> = user_session::table
        .find(id)
        .left_join(wx_user::table)
        .select((
            user_session::revoked_at.is_not_null(),
            (wx_user::status, wx_user::deleted).nullable(),
        ))
        .first(conn)
        .optional()?;
    // Never stored, or erased with its account (a session swept a day after its end has a
    // token past its `exp`, refused before this).
    let Some((revoked, account)) = row else {
        return Ok(SessionEnd::Unknown);
    };
    if !matches!(account, Some((user_status::USABLE, false))) {
        return Ok(SessionEnd::Disabled);
    }
    if revoked {
        return Ok(SessionEnd::Revoked);
    }
    // Stored, not revoked, its account usable, yet not live: past its expiry or its lifetime.
    Ok(SessionEnd::Expired)
}

/// Sessions created at or before this have reached their maximum lifetime.
fn born_after(max_lifetime: Duration) -> DateTime<Utc> {
    let now = Utc::now();
    chrono::Duration::from_std(max_lifetime)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Logout. Answers whether the session was live.
pub(crate) fn revoke(conn: &mut PgConnection, id: &str) -> Result<bool, DbError> {
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
pub(crate) fn revoke_all_of_user(conn: &mut PgConnection, user_id: i64) -> Result<usize, DbError> {
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

/// The admin's "log out everywhere": every live session of the user ends, the account stays as
/// it is. `None` when there is no such user; otherwise how many sessions were live.
pub(crate) fn end_all_of_existing_user(
    conn: &mut PgConnection,
    user_id: i64,
) -> Result<Option<usize>, DbError> {
    use super::schema::wx_user;
    conn.transaction(|conn| {
        // The user's row locked first, in the order a disable (whose trigger revokes the
        // sessions) takes them: the two wait for each other instead of deadlocking.
        let exists = wx_user::table
            .find(user_id)
            .select(wx_user::id)
            .for_update()
            .first::<i64>(conn)
            .optional()?
            .is_some();
        if !exists {
            return Ok(None);
        }
        revoke_all_of_user(conn, user_id).map(Some)
    })
}

/// Replaces a live session by a new one with the same session_key, atomically: of two refreshes
/// of one token, one wins and the other finds it revoked. `None` when the old one was not live;
/// otherwise the new session's expiry: `new.expires_at`, or earlier where the session reaches
/// `max_lifetime`. The new row keeps the old one's `created_at` (the login's time), so no
/// number of refreshes moves that end. `AccountNotUsable` when its user is disabled or deleted.
pub(crate) fn refresh(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    old_id: &str,
    new: &NewSessionMeta,
    max_lifetime: Duration,
) -> Result<Option<DateTime<Utc>>, DbError> {
    conn.transaction(|conn| {
        // The user before the session, in the order a disable (whose trigger revokes the
        // sessions) takes them: the two wait for each other instead of deadlocking.
        super::users::lock_usable(conn, new.user_id)?;
        let old: Option<(i64, Vec<u8>, DateTime<Utc>)> = user_session::table
            .find(old_id)
            .filter(user_session::revoked_at.is_null())
            .filter(user_session::expires_at.gt(diesel::dsl::now))
            .filter(user_session::created_at.gt(born_after(max_lifetime)))
            .select((
                user_session::user_id,
                user_session::session_key_enc,
                user_session::created_at,
            ))
            .for_update()
            .first(conn)
            .optional()?;
        let Some((user_id, sealed, created_at)) = old.filter(|(uid, _, _)| *uid == new.user_id)
        else {
            return Ok(None);
        };
        let session_key = cipher.open(old_id, &sealed).ok_or(DbError::Sealed)?;
        let expires_at = end_of(created_at, new.expires_at, max_lifetime);
        let stored = insert(
            conn,
            cipher,
            &NewSession {
                id: new.id.clone(),
                user_id,
                session_key,
                expires_at,
                client_ip: new.client_ip.clone(),
                user_agent: new.user_agent.clone(),
            },
        )?;
        if !stored {
            // The account stopped being usable; its sessions are being revoked.
            return Ok(None);
        }
        diesel::update(user_session::table.find(old_id))
            .set(user_session::revoked_at.eq(diesel::dsl::now))
            .execute(conn)?;
        // The new row is the same login: it keeps the login's time, so its end stays where it
        // was, and the user's newest login (the one WeChat's session_key belongs to) stays newest.
        diesel::update(user_session::table.find(&new.id))
            .set(user_session::created_at.eq(created_at))
            .execute(conn)?;
        notify(conn, &Revoked::Session(old_id.to_string()))?;
        Ok(Some(expires_at))
    })
}

/// The session_key of the user's newest login: WeChat keeps only that one valid.
pub(crate) fn newest_session_key(
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
pub(crate) fn touch(conn: &mut PgConnection, ids: &[String]) -> Result<usize, DbError> {
    Ok(
        diesel::update(user_session::table.filter(user_session::id.eq_any(ids)))
            .set(user_session::last_seen_at.eq(diesel::dsl::now))
            .execute(conn)?,
    )
}

pub(crate) fn count_live(conn: &mut PgConnection) -> Result<i64, DbError> {
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
    fn a_session_ends_at_its_expiry_or_its_maximum_lifetime_whichever_is_first() {
        let login = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let day = Duration::from_secs(24 * 3600);
        let in_hours = |h: i64| login + chrono::Duration::hours(h);
        assert_eq!(end_of(login, in_hours(7 * 24), day), in_hours(24), "cut");
        assert_eq!(end_of(login, in_hours(2), day), in_hours(2), "expiry first");
        assert_eq!(
            end_of(login, in_hours(2), Duration::from_secs(u64::MAX)),
            in_hours(2),
            "an unrepresentable maximum cuts nothing"
        );
    }

    #[test]
    fn clipping_respects_characters() {
        assert_eq!(clip("微信用户", 2), "微信");
        assert_eq!(clip("ab", 5), "ab");
    }
}
