//! `DbExecutor` messages of the meeting app: meetings, memberships, swiper images, the counts on
//! the user's page, and dev mode's demo data.

use std::collections::HashMap;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::DbExecutor;
use crate::db::demo::{self, SeedReport};
use crate::db::meetings::{self, JoinOutcome, MeetingInfo, MeetingPage, UserMeetingCounts};
use crate::db::models::{NewMeeting, SwiperImage};
use crate::db::{DbError, swiper};

#[derive(Message)]
#[rtype(result = "Result<Vec<SwiperImage>, DbError>")]
pub struct ListSwiperImages;

impl Handler<ListSwiperImages> for DbExecutor {
    type Result = Result<Vec<SwiperImage>, DbError>;

    fn handle(&mut self, _: ListSwiperImages, _: &mut Self::Context) -> Self::Result {
        swiper::enabled(&mut *self.conn()?)
    }
}

/// The home page in one round trip: swiper images and the next `upcoming` meetings.
#[derive(Message)]
#[rtype(result = "Result<HomePage, DbError>")]
pub struct LoadHomePage {
    pub now: DateTime<Utc>,
    pub upcoming: i64,
}

pub struct HomePage {
    pub swiper_images: Vec<SwiperImage>,
    pub upcoming: Vec<MeetingInfo>,
}

impl Handler<LoadHomePage> for DbExecutor {
    type Result = Result<HomePage, DbError>;

    fn handle(&mut self, msg: LoadHomePage, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(HomePage {
            swiper_images: swiper::enabled(&mut conn)?,
            upcoming: meetings::upcoming(&mut conn, msg.now, msg.upcoming)?,
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<MeetingPage, DbError>")]
pub struct ListMeetings {
    pub state: Option<i16>,
    pub offset: i64,
    pub limit: i64,
}

impl Handler<ListMeetings> for DbExecutor {
    type Result = Result<MeetingPage, DbError>;

    fn handle(&mut self, msg: ListMeetings, _: &mut Self::Context) -> Self::Result {
        meetings::list(&mut *self.conn()?, msg.state, msg.offset, msg.limit)
    }
}

#[derive(Message)]
#[rtype(result = "Result<Option<MeetingInfo>, DbError>")]
pub struct FindMeeting(pub i64);

impl Handler<FindMeeting> for DbExecutor {
    type Result = Result<Option<MeetingInfo>, DbError>;

    fn handle(&mut self, msg: FindMeeting, _: &mut Self::Context) -> Self::Result {
        meetings::find(&mut *self.conn()?, msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<MeetingInfo, DbError>")]
pub struct PublishMeeting(pub NewMeeting);

impl Handler<PublishMeeting> for DbExecutor {
    type Result = Result<MeetingInfo, DbError>;

    fn handle(&mut self, msg: PublishMeeting, _: &mut Self::Context) -> Self::Result {
        meetings::publish(&mut *self.conn()?, &msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<JoinOutcome, DbError>")]
pub struct JoinMeeting {
    pub meeting_id: i64,
    pub user_id: i64,
    pub now: DateTime<Utc>,
}

impl Handler<JoinMeeting> for DbExecutor {
    type Result = Result<JoinOutcome, DbError>;

    fn handle(&mut self, msg: JoinMeeting, _: &mut Self::Context) -> Self::Result {
        meetings::join(&mut *self.conn()?, msg.meeting_id, msg.user_id, msg.now)
    }
}

/// Answers the member count afterwards, or `None` when there is no such meeting.
#[derive(Message)]
#[rtype(result = "Result<Option<i64>, DbError>")]
pub struct LeaveMeeting {
    pub meeting_id: i64,
    pub user_id: i64,
}

impl Handler<LeaveMeeting> for DbExecutor {
    type Result = Result<Option<i64>, DbError>;

    fn handle(&mut self, msg: LeaveMeeting, _: &mut Self::Context) -> Self::Result {
        meetings::leave(&mut *self.conn()?, msg.meeting_id, msg.user_id)
    }
}

/// How many meetings the user published and joined.
#[derive(Message)]
#[rtype(result = "Result<UserMeetingCounts, DbError>")]
pub struct CountUserMeetings(pub i64);

impl Handler<CountUserMeetings> for DbExecutor {
    type Result = Result<UserMeetingCounts, DbError>;

    fn handle(&mut self, msg: CountUserMeetings, _: &mut Self::Context) -> Self::Result {
        meetings::counts_for_user(&mut *self.conn()?, msg.0)
    }
}

/// `CountUserMeetings` for many users at once: what a `user/index` batch sends.
#[derive(Message)]
#[rtype(result = "Result<HashMap<i64, UserMeetingCounts>, DbError>")]
pub struct CountManyUserMeetings(pub Vec<i64>);

impl Handler<CountManyUserMeetings> for DbExecutor {
    type Result = Result<HashMap<i64, UserMeetingCounts>, DbError>;

    fn handle(&mut self, msg: CountManyUserMeetings, _: &mut Self::Context) -> Self::Result {
        meetings::counts_for_users(&mut *self.conn()?, &msg.0)
    }
}

/// Dev mode's start: the demo data, when the app has no meetings and no swiper images yet.
#[derive(Message)]
#[rtype(result = "Result<Option<SeedReport>, DbError>")]
pub struct SeedDemoIfEmpty {
    pub now: DateTime<Utc>,
}

impl Handler<SeedDemoIfEmpty> for DbExecutor {
    type Result = Result<Option<SeedReport>, DbError>;

    fn handle(&mut self, msg: SeedDemoIfEmpty, _: &mut Self::Context) -> Self::Result {
        demo::seed_if_empty(&mut *self.conn()?, msg.now)
    }
}
