//! Queries on `user_session`. Every revocation also sends a `NOTIFY` in the same transaction, so
//! other instances drop the session from their caches the moment it is committed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Nullable, SmallInt, Text, Timestamptz};

use super::DbError;
use super::models::WxUserRow;
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

/// How often a login's statement runs at most. It runs again only when it met a concurrent
/// login at a unique constraint (the same person's first login in two apps at once, say): the
/// second run sees the row the other committed.
const LOGIN_ATTEMPTS: usize = 3;

/// The whole database part of a login in one statement, hence one commit: the identity leads to
/// its user; a new identity whose unionid is a user's joins that user; otherwise a new user is
/// created with it. The user's login time is updated (its profile is left alone: it is edited
/// through its own endpoint; a unionid WeChat newly reports is kept, unless another user has it),
/// and the session is inserted only for a usable user (status 0, not deleted).
/// Either all of it is committed or none: a dropped connection cannot leave a user without the
/// identity or the session of its login.
/// Concurrent first logins (of one identity, or of one person in two apps) meet at a unique
/// constraint (`weixin_openid`, `unionid`, or the identity's): the one that waited does nothing
/// and runs again, finding what the other made, so one person ends with one user.
pub(crate) fn login(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    login: &SignIn,
) -> Result<LoginRecord, DbError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match login_once(conn, cipher, login) {
            Ok(Some(record)) if record.identity_user_id == Some(record.user.id) => {
                return Ok(record);
            }
            Ok(_) if attempt < LOGIN_ATTEMPTS => {}
            Err(DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ))) if attempt < LOGIN_ATTEMPTS => {}
            Ok(_) => return Err(DbError::Contended),
            Err(e) => return Err(e),
        }
    }
}

/// One run of the login statement; `None` when it met a concurrent login's uncommitted row.
fn login_once(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    login: &SignIn,
) -> Result<Option<LoginRecord>, DbError> {
    let username = format!("wx_{}", crate::random::token_hex(8));
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        user: WxUserRow,
        #[diesel(sql_type = Bool)]
        session_stored: bool,
        #[diesel(sql_type = Nullable<BigInt>)]
        identity_user_id: Option<i64>,
        #[diesel(sql_type = Nullable<BigInt>)]
        unionid_user_id: Option<i64>,
    }
    // The statement is the function `wxauth_login` (the migration `login_function`): planned
    // once per connection there, where this unnamed statement would be parsed and planned
    // again with every login.
    let row: Option<Row> = diesel::sql_query(
        "SELECT (r.account).*, r.session_stored, r.identity_user_id, r.unionid_user_id \
         FROM wxauth_login($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) r",
    )
    .bind::<Text, _>(&username)
    .bind::<Text, _>(&login.profile.nickname)
    .bind::<Text, _>(&login.profile.avatar)
    .bind::<SmallInt, _>(login.profile.gender)
    .bind::<Text, _>(login.identity.user_key())
    .bind::<Nullable<Text>, _>(login.unionid.as_deref())
    .bind::<Timestamptz, _>(login.at)
    .bind::<Text, _>(clip(&login.client_ip, 63))
    .bind::<Text, _>(&login.identity.app_id)
    .bind::<Text, _>(&login.identity.subject)
    .bind::<SmallInt, _>(login.identity.kind as i16)
    .bind::<Bool, _>(login.default_app)
    .bind::<Text, _>(&login.session_id)
    .bind::<Bytea, _>(cipher.seal(&login.session_id, &login.session_key))
    .bind::<Timestamptz, _>(login.expires_at)
    .bind::<Text, _>(clip(&login.user_agent, 255))
    .get_result(conn)
    .optional()?;
    Ok(row.map(|r| LoginRecord {
        user: r.user.into(),
        session_stored: r.session_stored,
        identity_user_id: r.identity_user_id,
        unionid_user_id: r.unionid_user_id,
    }))
}

/// Gives every user without an identity (made before identities existed, or by the previous
/// release while both ran) one in the default app: its `weixin_openid` is that app's openid.
/// Run at start; idempotent, and safe with several instances starting at once. Answers how many
/// identities it made.
pub fn adopt_users_without_identity(
    conn: &mut PgConnection,
    default_appid: &str,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(
        "INSERT INTO user_identity (user_id, kind, app_id, subject, unionid, add_time,
                                    last_login_time)
         SELECT w.id, 1, $1, w.weixin_openid, w.unionid, w.add_time, w.last_login_time
         FROM wx_user w
         WHERE w.weixin_openid <> $2
           AND NOT EXISTS (SELECT 1 FROM user_identity i WHERE i.user_id = w.id)
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(default_appid)
    .bind::<Text, _>(super::deletion::STAND_IN_OPENID)
    .execute(conn)?)
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
        let old: Option<(i64, Vec<u8>, DateTime<Utc>, String)> = user_session::table
            .find(old_id)
            .filter(user_session::revoked_at.is_null())
            .filter(user_session::expires_at.gt(diesel::dsl::now))
            .filter(user_session::created_at.gt(born_after(max_lifetime)))
            .select((
                user_session::user_id,
                user_session::session_key_enc,
                user_session::created_at,
                user_session::app_id,
            ))
            .for_update()
            .first(conn)
            .optional()?;
        let Some((user_id, sealed, created_at, app_id)) =
            old.filter(|(uid, _, _, _)| *uid == new.user_id)
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
        // And it is the same app's.
        diesel::update(user_session::table.find(&new.id))
            .set((
                user_session::created_at.eq(created_at),
                user_session::app_id.eq(app_id),
            ))
            .execute(conn)?;
        notify(conn, &Revoked::Session(old_id.to_string()))?;
        Ok(Some(expires_at))
    })
}

/// What `bindPhone` needs of a token's app, read with one query from the token's session.
pub(crate) struct SessionApp {
    /// The app the session was opened in (the default app for the previous release's sessions).
    pub(crate) appid: String,
    /// The user's openid in that app; `None` when the user has no identity there.
    pub(crate) openid: Option<String>,
    /// The session_key of the user's newest login in that app: WeChat keeps only that one valid
    /// per app.
    pub(crate) newest_session_key: Option<SessionKey>,
}

#[derive(QueryableByName)]
struct SessionAppRow {
    #[diesel(sql_type = Text)]
    appid: String,
    #[diesel(sql_type = Nullable<Text>)]
    openid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    newest_id: Option<String>,
    #[diesel(sql_type = Nullable<Bytea>)]
    newest_key: Option<Vec<u8>>,
}

/// The app of session `id`, the user's openid there and the newest session_key there. `None`
/// when there is no such session.
pub(crate) fn session_app(
    conn: &mut PgConnection,
    cipher: &SessionKeyCipher,
    id: &str,
    default_appid: &str,
) -> Result<Option<SessionApp>, DbError> {
    let row: Option<SessionAppRow> = diesel::sql_query(
        "SELECT a.appid,
                (SELECT i.subject FROM user_identity i
                  WHERE i.user_id = s.user_id AND i.app_id = a.appid) AS openid,
                n.id AS newest_id, n.session_key_enc AS newest_key
         FROM user_session s
         CROSS JOIN LATERAL (SELECT coalesce(nullif(s.app_id, ''), $2) AS appid) a
         LEFT JOIN LATERAL (
             SELECT n.id, n.session_key_enc FROM user_session n
             WHERE n.user_id = s.user_id AND coalesce(nullif(n.app_id, ''), $2) = a.appid
             ORDER BY n.created_at DESC LIMIT 1
         ) n ON true
         WHERE s.id = $1",
    )
    .bind::<Text, _>(id)
    .bind::<Text, _>(default_appid)
    .get_result(conn)
    .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let newest_session_key = match (row.newest_id, row.newest_key) {
        (Some(id), Some(sealed)) => Some(cipher.open(&id, &sealed).ok_or(DbError::Sealed)?),
        _ => None,
    };
    Ok(Some(SessionApp {
        appid: row.appid,
        openid: row.openid,
        newest_session_key,
    }))
}

/// The app session `id` was opened in: `''` (a session of the release before apps were recorded)
/// is the default app's. `None`: no such session.
pub(crate) fn session_appid(
    conn: &mut PgConnection,
    id: &str,
    default_appid: &str,
) -> Result<Option<String>, DbError> {
    let app_id: Option<String> = user_session::table
        .find(id)
        .select(user_session::app_id)
        .first(conn)
        .optional()?;
    Ok(app_id.map(|a| match a.as_str() {
        "" => default_appid.to_string(),
        _ => a,
    }))
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
