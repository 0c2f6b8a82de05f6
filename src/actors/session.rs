//! `SessionActor`: the live sessions (by token id) and each user's newest session_key. A token is
//! only as good as its entry here: logout removes the entry and the token is dead at once.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::wechat::SessionKey;

/// How often expired sessions are swept out of memory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

struct LiveSession {
    user_id: i64,
    expires_at: i64,
}

#[derive(Default)]
pub struct SessionActor {
    sessions: HashMap<String, LiveSession>,
    /// WeChat keeps one valid session_key per user; so do we, replaced on every login.
    session_keys: HashMap<i64, SessionKey>,
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_EVERY, |act, _| act.sweep(now()));
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl SessionActor {
    fn sweep(&mut self, now: i64) {
        self.sessions.retain(|_, s| s.expires_at > now);
        let live_users: std::collections::HashSet<i64> =
            self.sessions.values().map(|s| s.user_id).collect();
        self.session_keys
            .retain(|user, _| live_users.contains(user));
    }
}

/// Records a new session after a login.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartSession {
    pub jti: String,
    pub user_id: i64,
    pub expires_at: i64,
    pub session_key: SessionKey,
}

impl Handler<StartSession> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: StartSession, _: &mut Self::Context) {
        self.session_keys.insert(msg.user_id, msg.session_key);
        self.sessions.insert(
            msg.jti,
            LiveSession {
                user_id: msg.user_id,
                expires_at: msg.expires_at,
            },
        );
    }
}

/// Is this session live and does it belong to this user?
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CheckSession {
    pub jti: String,
    pub user_id: i64,
}

impl Handler<CheckSession> for SessionActor {
    type Result = bool;

    fn handle(&mut self, msg: CheckSession, _: &mut Self::Context) -> bool {
        self.sessions
            .get(&msg.jti)
            .is_some_and(|s| s.user_id == msg.user_id && s.expires_at > now())
    }
}

/// Ends a session (logout). Answers whether it was live.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct EndSession {
    pub jti: String,
}

impl Handler<EndSession> for SessionActor {
    type Result = bool;

    fn handle(&mut self, msg: EndSession, _: &mut Self::Context) -> bool {
        self.sessions.remove(&msg.jti).is_some()
    }
}

/// The user's newest session_key, for decrypting WeChat's encrypted data.
#[derive(Message)]
#[rtype(result = "Option<SessionKey>")]
pub struct GetSessionKey {
    pub user_id: i64,
}

impl Handler<GetSessionKey> for SessionActor {
    type Result = Option<SessionKey>;

    fn handle(&mut self, msg: GetSessionKey, _: &mut Self::Context) -> Option<SessionKey> {
        self.session_keys.get(&msg.user_id).cloned()
    }
}

/// How many sessions are live, for the status page.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSessions;

impl Handler<CountSessions> for SessionActor {
    type Result = usize;

    fn handle(&mut self, _: CountSessions, _: &mut Self::Context) -> usize {
        let now = now();
        self.sessions
            .values()
            .filter(|s| s.expires_at > now)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn sessions_live_until_ended_or_expired() {
        let addr = SessionActor::default().start();
        let key = SessionKey::new("k".into());
        let start = |jti: &str, user_id, expires_at| StartSession {
            jti: jti.into(),
            user_id,
            expires_at,
            session_key: key.clone(),
        };
        addr.send(start("a", 1, now() + 100))
            .await
            .expect("mailbox");
        addr.send(start("old", 1, now() - 1))
            .await
            .expect("mailbox");
        let check = |jti: &str, user_id| CheckSession {
            jti: jti.into(),
            user_id,
        };
        assert!(addr.send(check("a", 1)).await.expect("mailbox"));
        assert!(
            !addr.send(check("a", 2)).await.expect("mailbox"),
            "another user's token id"
        );
        assert!(
            !addr.send(check("old", 1)).await.expect("mailbox"),
            "expired"
        );
        assert!(
            !addr.send(check("nope", 1)).await.expect("mailbox"),
            "unknown"
        );
        assert_eq!(addr.send(CountSessions).await.expect("mailbox"), 1);
        assert!(
            addr.send(EndSession { jti: "a".into() })
                .await
                .expect("mailbox")
        );
        assert!(!addr.send(check("a", 1)).await.expect("mailbox"), "ended");
        assert!(
            !addr
                .send(EndSession { jti: "a".into() })
                .await
                .expect("mailbox"),
            "ended twice"
        );
    }

    #[test]
    fn sweep_drops_expired_sessions_and_orphaned_keys() {
        let mut actor = SessionActor::default();
        actor.sessions.insert(
            "a".into(),
            LiveSession {
                user_id: 1,
                expires_at: 10,
            },
        );
        actor.sessions.insert(
            "b".into(),
            LiveSession {
                user_id: 2,
                expires_at: 30,
            },
        );
        actor.session_keys.insert(1, SessionKey::new("k1".into()));
        actor.session_keys.insert(2, SessionKey::new("k2".into()));
        actor.sweep(20);
        assert_eq!(actor.sessions.len(), 1);
        assert!(actor.session_keys.contains_key(&2));
        assert!(!actor.session_keys.contains_key(&1));
    }
}
