//! `DbHandle`, the API of the database: the only way to the executor (`executor.rs`, synchronous
//! Diesel on a `SyncArbiter`, so blocking queries never stall the HTTP workers).
//!
//! The executor knows one message, `Run`: a query function of `crate::db`, run on a pooled
//! connection with the executor's context (the cipher that seals stored session_keys). The
//! handle has a method per operation, so a new query is its function in `crate::db`, one method
//! here and one line where it is used. Every method answers `DbFailure`, which converts into
//! the API error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::PgConnection;
use diesel::RunQueryDsl;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::executor::{self, DbExecutor, Run};
use crate::admission::{Admission, Busy};
use crate::db::deletion::{self, Swept};
use crate::db::demo::{self, SeedReport};
use crate::db::sealed::SessionKeyCipher;
use crate::db::{
    DbError, PgPool, export, login_log, meetings, reminders, sessions, setup, swiper, users,
};
use crate::domain::{
    DeletionCounts, HomePage, JoinOutcome, LiveSession, LoginAttempt, LoginRecord, LoginSummary,
    MeetingDraft, MeetingInfo, MeetingPage, MobileBinding, NewSessionMeta, Pending, PersonalData,
    ProfileEdit, Restore, ReviewDecision, ReviewOutcome, SessionEnd, SignIn, SwiperImage,
    UserMeetingCounts, WxUser,
};
use crate::read_batch::{LoadBatch, ReadBatcher};

/// How long a database read may take, queue included, so that the request still answers within
/// the client's 3 s (the rest is the token check and the answer).
pub(crate) const READ_BUDGET: Duration = Duration::from_millis(2000);

/// Upkeep (login_log batches, `last_seen_at`, sweeps) at the executor at once: however long the
/// database stalls, upkeep holds at most this many of its threads and queues nothing behind
/// them.
pub(crate) const BACKGROUND_IN_FLIGHT: usize = 2;
/// Upkeep waiting for its turn beyond those; more is refused, and tried again at its next tick.
pub(crate) const BACKGROUND_QUEUE: usize = 8;

/// What a database call answers.
pub type DbResult<T> = Result<T, DbFailure>;

/// Why a database call did not answer.
#[derive(Debug, thiserror::Error)]
pub enum DbFailure {
    /// Refused before it was sent: more work is waiting than can be served in time.
    #[error("database busy: {}", .0.reason)]
    Busy(Busy),
    #[error("database executor stopped: {0}")]
    Stopped(#[from] MailboxError),
    #[error(transparent)]
    Query(#[from] DbError),
    /// The failure of a read batch, answered to each request in it.
    #[error(transparent)]
    Shared(Arc<DbFailure>),
}

/// How a call is admitted to the executor.
#[derive(Clone, Copy)]
enum Lane {
    /// Requests: at most `max_in_flight` messages, a few more queued for as long as they can
    /// still be answered in time, the rest refused at once with errno 721.
    Reads,
    /// Work admitted elsewhere: never refused.
    Admitted,
    /// Upkeep: `BACKGROUND_IN_FLIGHT`, then `BACKGROUND_QUEUE` waiting, then refused.
    Background,
}

struct Shared {
    addr: Addr<DbExecutor>,
    reads: Arc<Admission>,
    background: Arc<Semaphore>,
    background_waiting: AtomicUsize,
    /// Only to read its state: when every executor thread is stuck on a dead database, a message
    /// asking about the pool would wait behind them.
    pool: PgPool,
}

/// The way to the DbExecutor. A `SyncArbiter` mailbox is unbounded, so without a bound a stalled
/// database would queue requests forever: every call goes through a lane that bounds it (see
/// `Lane`). A handle calls through the reads lane; `admitted()` is for logins, which passed
/// their own admission before their code was exchanged (their number is bounded there, and once
/// a code is spent the login must not be refused for want of a place here); `background()` is
/// for upkeep.
#[derive(Clone)]
pub struct DbHandle {
    shared: Arc<Shared>,
    lane: Lane,
    /// `user/index`'s counts, read in batches: it is the read every page view makes.
    meeting_counts: ReadBatcher<i64, UserMeetingCounts, Arc<DbFailure>>,
}

impl DbHandle {
    /// Starts `threads` executors on `pool`; `reads` bounds the reads lane.
    pub(crate) fn start(
        pool: PgPool,
        cipher: SessionKeyCipher,
        threads: usize,
        reads: Arc<Admission>,
    ) -> DbHandle {
        let addr = executor::start(pool.clone(), cipher, threads);
        let shared = Arc::new(Shared {
            addr,
            reads,
            background: Arc::new(Semaphore::new(BACKGROUND_IN_FLIGHT)),
            background_waiting: AtomicUsize::new(0),
            pool,
        });
        DbHandle {
            meeting_counts: meeting_counts_batcher(&shared),
            shared,
            lane: Lane::Reads,
        }
    }

    /// This handle, for work already admitted elsewhere (a login whose code is exchanged).
    pub(crate) fn admitted(&self) -> DbHandle {
        self.on(Lane::Admitted)
    }

    /// This handle, for upkeep.
    pub fn background(&self) -> DbHandle {
        self.on(Lane::Background)
    }

    fn on(&self, lane: Lane) -> DbHandle {
        DbHandle {
            shared: self.shared.clone(),
            lane,
            meeting_counts: self.meeting_counts.clone(),
        }
    }

    /// The reads lane's admission, for the status page.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.shared.reads
    }

    /// The executor's pool, to read its state (never to run a query: that is the executor's).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    async fn run<T, F>(&self, job: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection, &SessionKeyCipher) -> Result<T, DbError> + Send + 'static,
    {
        self.shared.run(self.lane, job).await
    }

    // ---- users ----

    pub(crate) async fn user(&self, id: i64) -> DbResult<Option<WxUser>> {
        self.run(move |c, _| users::find_by_id(c, id)).await
    }

    pub(crate) async fn openid_in(&self, user_id: i64, appid: String) -> DbResult<Option<String>> {
        self.run(move |c, _| users::openid_in(c, user_id, &appid))
            .await
    }

    pub(crate) async fn bind_mobile(
        &self,
        user_id: i64,
        mobile: String,
    ) -> DbResult<MobileBinding> {
        self.run(move |c, _| users::bind_mobile(c, user_id, &mobile))
            .await
    }

    /// The updated user; `None` when there is no such usable user.
    pub(crate) async fn update_profile(
        &self,
        user_id: i64,
        edit: ProfileEdit,
    ) -> DbResult<Option<WxUser>> {
        self.run(move |c, _| users::update_profile(c, user_id, &edit))
            .await
    }

    /// Disables (1) or enables (0) an account; admin only.
    pub(crate) async fn set_user_status(
        &self,
        user_id: i64,
        status: i16,
    ) -> DbResult<Option<WxUser>> {
        self.run(move |c, _| users::set_status(c, user_id, status))
            .await
    }

    // ---- sessions ----

    /// A login's identity, user and session, in one statement (`wxauth_login`).
    pub(crate) async fn login(&self, login: SignIn) -> DbResult<LoginRecord> {
        self.run(move |c, cipher| sessions::login(c, cipher, &login))
            .await
    }

    pub(crate) async fn live_session(
        &self,
        id: String,
        max_lifetime: Duration,
    ) -> DbResult<Result<LiveSession, SessionEnd>> {
        self.run(move |c, _| sessions::load_live(c, &id, max_lifetime))
            .await
    }

    /// Whether the session was live.
    pub(crate) async fn revoke_session(&self, id: String) -> DbResult<bool> {
        self.run(move |c, _| sessions::revoke(c, &id)).await
    }

    /// How many sessions were live.
    pub(crate) async fn revoke_user_sessions(&self, user_id: i64) -> DbResult<usize> {
        self.run(move |c, _| sessions::revoke_all_of_user(c, user_id))
            .await
    }

    /// `None` when there is no such user; otherwise how many sessions were live.
    pub(crate) async fn end_sessions_of_user(&self, user_id: i64) -> DbResult<Option<usize>> {
        self.run(move |c, _| sessions::end_all_of_existing_user(c, user_id))
            .await
    }

    pub(crate) async fn refresh_session(
        &self,
        old_id: String,
        new: NewSessionMeta,
        max_lifetime: Duration,
    ) -> DbResult<Option<DateTime<Utc>>> {
        self.run(move |c, cipher| sessions::refresh(c, cipher, &old_id, &new, max_lifetime))
            .await
    }

    /// Merges the login's user `a` and the holder `b` of the unionid it reported.
    pub(crate) async fn merge_by_unionid(
        &self,
        a: i64,
        b: i64,
        unionid: String,
        session_id: String,
    ) -> DbResult<Option<crate::db::merge::Merged>> {
        self.run(move |c, _| crate::db::merge::merge_by_unionid(c, a, b, &unionid, &session_id))
            .await
    }

    /// Attaches an identity to the caller's account, merging the accounts that had it or its
    /// unionid.
    pub(crate) async fn link_identity(
        &self,
        caller: i64,
        identity: crate::domain::Identity,
        unionid: Option<String>,
    ) -> DbResult<Option<(WxUser, Vec<i64>)>> {
        self.run(move |c, _| crate::db::merge::link(c, caller, &identity, unionid.as_deref()))
            .await
    }

    /// The app of a token's session, the user's openid there and newest session_key there.
    pub(crate) async fn session_app(
        &self,
        session_id: String,
        default_appid: String,
    ) -> DbResult<Option<sessions::SessionApp>> {
        self.run(move |c, cipher| sessions::session_app(c, cipher, &session_id, &default_appid))
            .await
    }

    /// The app a session was opened in; `None`: no such session.
    pub(crate) async fn session_appid(
        &self,
        session_id: String,
        default_appid: String,
    ) -> DbResult<Option<String>> {
        self.run(move |c, _| sessions::session_appid(c, &session_id, &default_appid))
            .await
    }

    pub(crate) async fn touch_sessions(&self, ids: Vec<String>) -> DbResult<usize> {
        self.run(move |c, _| sessions::touch(c, &ids)).await
    }

    pub(crate) async fn sweep_sessions(&self) -> DbResult<usize> {
        self.run(|c, _| sessions::sweep_expired(c)).await
    }

    pub(crate) async fn count_live_sessions(&self) -> DbResult<i64> {
        self.run(|c, _| sessions::count_live(c)).await
    }

    // ---- account deletion and export ----

    /// The user asks for the account to be deleted after `grace`; `None`: no such user.
    pub(crate) async fn request_deletion(
        &self,
        user_id: i64,
        grace: TimeDelta,
    ) -> DbResult<Option<Pending>> {
        self.run(move |c, _| deletion::request(c, user_id, grace))
            .await
    }

    /// A login of an account whose deletion is pending: restore it if it may be.
    pub(crate) async fn restore_on_login(
        &self,
        user_id: i64,
        login_began: DateTime<Utc>,
    ) -> DbResult<Restore> {
        self.run(move |c, _| deletion::restore(c, user_id, login_began))
            .await
    }

    /// Erases the account's personal data now; `false`: no such user.
    pub(crate) async fn erase_user(&self, user_id: i64) -> DbResult<bool> {
        self.run(move |c, _| deletion::erase_now(c, user_id)).await
    }

    /// Erases up to `limit` accounts whose grace period is over.
    pub async fn sweep_deletions(&self, limit: usize) -> DbResult<Swept> {
        self.run(move |c, _| deletion::sweep_due(c, limit)).await
    }

    pub(crate) async fn deletion_counts(&self) -> DbResult<DeletionCounts> {
        self.run(|c, _| deletion::counts(c)).await
    }

    /// Everything kept about the user, for `auth/export`; `None`: no such user.
    pub(crate) async fn personal_data(&self, user_id: i64) -> DbResult<Option<PersonalData>> {
        self.run(move |c, _| export::personal_data(c, user_id))
            .await
    }

    // ---- login_log ----

    /// Writes a batch of `login_log` rows in one statement; answers how many.
    pub(crate) async fn record_logins(&self, attempts: Vec<LoginAttempt>) -> DbResult<usize> {
        self.run(move |c, _| login_log::insert_many(c, &attempts))
            .await
    }

    /// Deletes `login_log` rows older than the cutoff; answers how many.
    pub(crate) async fn prune_login_log(&self, cutoff: DateTime<Utc>) -> DbResult<usize> {
        self.run(move |c, _| login_log::prune(c, cutoff)).await
    }

    /// The logins part of the admin status.
    pub(crate) async fn login_summary(
        &self,
        now: DateTime<Utc>,
        recent: i64,
    ) -> DbResult<LoginSummary> {
        self.run(move |c, _| login_log::summary(c, now, recent))
            .await
    }

    // ---- meetings ----

    pub(crate) async fn swiper_images(&self) -> DbResult<Vec<SwiperImage>> {
        self.run(|c, _| swiper::enabled(c)).await
    }

    /// The home page in one round trip: swiper images and the next `upcoming` meetings.
    pub(crate) async fn home_page(&self, now: DateTime<Utc>, upcoming: i64) -> DbResult<HomePage> {
        self.run(move |c, _| {
            Ok(HomePage {
                swiper_images: swiper::enabled(c)?,
                upcoming: meetings::upcoming(c, now, upcoming)?,
            })
        })
        .await
    }

    pub(crate) async fn meetings(
        &self,
        state: Option<i16>,
        offset: i64,
        limit: i64,
    ) -> DbResult<MeetingPage> {
        self.run(move |c, _| meetings::list(c, state, offset, limit))
            .await
    }

    pub(crate) async fn meeting(&self, id: i64) -> DbResult<Option<MeetingInfo>> {
        self.run(move |c, _| meetings::find(c, id)).await
    }

    /// `review`: the meeting's `review_state` (pending when the content check asked for one).
    pub(crate) async fn publish_meeting(
        &self,
        publisher_id: i64,
        draft: MeetingDraft,
        review: i16,
        now: DateTime<Utc>,
    ) -> DbResult<MeetingInfo> {
        self.run(move |c, _| meetings::publish(c, publisher_id, &draft, review, now))
            .await
    }

    /// An admin approves or rejects a meeting.
    pub(crate) async fn review_meeting(
        &self,
        id: i64,
        decision: ReviewDecision,
        now: DateTime<Utc>,
    ) -> DbResult<ReviewOutcome> {
        self.run(move |c, _| meetings::review(c, id, decision, now))
            .await
    }

    /// A member's answer to an app's reminder template for a meeting.
    pub(crate) async fn subscribe_reminder(
        &self,
        consent: reminders::Consent,
    ) -> DbResult<reminders::SubscribeOutcome> {
        self.run(move |c, _| reminders::subscribe(c, &consent))
            .await
    }

    /// Claims the `sending` apps' reminders due within `lead` (the sender, on the upkeep lane).
    pub(crate) async fn claim_reminders(
        &self,
        sending: Arc<[reminders::SendingApp]>,
        default_appid: Arc<str>,
        now: DateTime<Utc>,
        lead: TimeDelta,
        limit: i64,
    ) -> DbResult<Vec<reminders::DueReminder>> {
        self.run(move |c, _| reminders::claim_due(c, &sending, &default_appid, now, lead, limit))
            .await
    }

    /// Writes how claimed reminders ended.
    pub(crate) async fn finish_reminders(
        &self,
        outcomes: Vec<(i64, i64, reminders::Outcome)>,
        now: DateTime<Utc>,
    ) -> DbResult<usize> {
        self.run(move |c, _| reminders::finish(c, &outcomes, now))
            .await
    }

    pub(crate) async fn reminder_counts(&self) -> DbResult<reminders::ReminderCounts> {
        self.run(|c, _| reminders::counts(c)).await
    }

    /// The meetings waiting for an admin, oldest first.
    pub(crate) async fn meetings_pending_review(&self, limit: i64) -> DbResult<Vec<MeetingInfo>> {
        self.run(move |c, _| meetings::pending_review(c, limit))
            .await
    }

    pub(crate) async fn join_meeting(
        &self,
        meeting_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> DbResult<JoinOutcome> {
        self.run(move |c, _| meetings::join(c, meeting_id, user_id, now))
            .await
    }

    /// The member count afterwards, or `None` when there is no such meeting.
    pub(crate) async fn leave_meeting(
        &self,
        meeting_id: i64,
        user_id: i64,
    ) -> DbResult<Option<i64>> {
        self.run(move |c, _| meetings::leave(c, meeting_id, user_id))
            .await
    }

    /// How many meetings the user published and joined, read with the requests that arrive
    /// meanwhile (`ReadBatcher`).
    pub(crate) async fn meeting_counts(&self, user_id: i64) -> DbResult<UserMeetingCounts> {
        match self.meeting_counts.get(user_id).await {
            Ok(counts) => Ok(counts.unwrap_or_default()),
            Err(shared) => Err(Arc::try_unwrap(shared).unwrap_or_else(DbFailure::Shared)),
        }
    }

    /// Dev mode's start: the demo data, when the app has no meetings and no swiper images yet.
    pub(crate) async fn seed_demo_if_empty(
        &self,
        now: DateTime<Utc>,
    ) -> DbResult<Option<SeedReport>> {
        self.run(move |c, _| demo::seed_if_empty(c, now)).await
    }

    // ---- health ----

    /// Is the database reachable? For `/healthz`.
    pub(crate) async fn ping(&self) -> DbResult<()> {
        self.run(|c, _| {
            diesel::sql_query("SELECT 1").execute(c)?;
            Ok(())
        })
        .await
    }

    /// Which embedded migrations the database lacks. For `/readyz`.
    pub(crate) async fn pending_migrations(&self) -> DbResult<Vec<String>> {
        self.run(|c, _| setup::pending_migrations(c)).await
    }
}

impl Shared {
    async fn run<T, F>(&self, lane: Lane, job: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection, &SessionKeyCipher) -> Result<T, DbError> + Send + 'static,
    {
        let mut run = Run {
            job: Box::new(job),
            read: None,
            _upkeep: None,
        };
        match lane {
            Lane::Reads => {
                let permit = self.reads.acquire(READ_BUDGET).await;
                run.read = Some(permit.map_err(DbFailure::Busy)?);
            }
            Lane::Admitted => {}
            Lane::Background => run._upkeep = Some(self.background_place().await?),
        }
        Ok(self.addr.send(run).await??)
    }

    /// A place in the background lane: at once, after a bounded wait, or refused.
    async fn background_place(&self) -> DbResult<OwnedSemaphorePermit> {
        if let Ok(place) = self.background.clone().try_acquire_owned() {
            return Ok(place);
        }
        if self.background_waiting.fetch_add(1, Ordering::AcqRel) >= BACKGROUND_QUEUE {
            self.background_waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(backlog());
        }
        // Counted until it has its place, or gives up waiting (dropped).
        let _waiting = Waiting(&self.background_waiting);
        self.background
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| backlog())
    }
}

/// `user/index` batches at the database at once. One: a statement for a few hundred users takes
/// a few milliseconds, more reads per second than an instance's HTTP workers can ask for, and
/// every further batch in flight only splits the reads into smaller statements, each a wake-up
/// of an executor thread, a backend and a worker, all taking turns on the same CPUs.
/// The other reads and the logins keep the executor's remaining threads.
const COUNT_BATCHES_IN_FLIGHT: usize = 1;

/// Each batch is one read in the reads lane, admitted and shed like any other.
fn meeting_counts_batcher(
    shared: &Arc<Shared>,
) -> ReadBatcher<i64, UserMeetingCounts, Arc<DbFailure>> {
    let at_db = shared.clone();
    let load: LoadBatch<i64, UserMeetingCounts, Arc<DbFailure>> = Arc::new(move |ids| {
        let shared = at_db.clone();
        Box::pin(async move {
            shared
                .run(Lane::Reads, move |c, _| meetings::counts_for_users(c, &ids))
                .await
                .map_err(Arc::new)
        })
    });
    let reads = shared.reads.clone();
    let refuse = Arc::new(move || Arc::new(DbFailure::Busy(reads.refuse_overflow())));
    ReadBatcher::new(COUNT_BATCHES_IN_FLIGHT, 256, READ_BUDGET, load, refuse)
}

fn backlog() -> DbFailure {
    DbFailure::Busy(Busy {
        kind: "background",
        reason: "too much upkeep waiting for the database",
        retry_after: Duration::ZERO,
    })
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
