//! Demo data: a week of meetings in an office, a few colleagues who joined them, and the home
//! page's swiper images, so that a developer running `cargo run` sees a living app.
//!
//! Loaded by `wxauth seed-demo`, and by dev mode's start when the meeting and swiper tables are
//! both empty. Never by a production start. Loading is idempotent: demo meetings are recognised
//! by their publisher (openid `demo-publisher`), swiper images are only added to an empty table.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::models::{NewMeeting, NewMeetingMember, NewSwiperImage, NewWxUser};
use super::schema::{meeting, meeting_member, swiper_image, wx_user};
use super::{DbError, setup};
use crate::china_time::china_midnight;
use crate::config::Config;
use crate::domain::meeting_state;

/// The demo users' openids. Real openids are 28 base64 characters starting with `o`; these can
/// never collide with one.
pub const DEMO_PUBLISHER_OPENID: &str = "demo-publisher";

/// Arbitrary, fixed, distinct from the migrations' lock: serialises concurrent seeders (two dev
/// instances starting at once) so that their check-then-insert cannot both insert.
const SEED_LOCK_KEY: i64 = 0x7778_6465_6d6f; // "wxdemo"

/// The publisher first; the others join meetings. (openid, nickname)
const DEMO_USERS: [(&str, &str); 4] = [
    (DEMO_PUBLISHER_OPENID, "行政部·王秘书"),
    ("demo-member-1", "张伟"),
    ("demo-member-2", "李娜"),
    ("demo-member-3", "刘洋"),
];

struct DemoMeeting {
    title: &'static str,
    content: &'static str,
    location: &'static str,
    /// Days from today (China Standard Time); negative for meetings already held.
    day: i64,
    /// Start, minutes after midnight CST.
    start: i64,
    minutes: i64,
    state: i16,
    /// Which of the demo users (by index into `DEMO_USERS`, after the publisher) joined.
    members: &'static [usize],
}

const DEMO_MEETINGS: [DemoMeeting; 8] = [
    DemoMeeting {
        title: "项目周例会",
        content: "各项目组同步本周进展、下周计划和需要协调的问题，请提前更新项目看板。",
        location: "3号楼305会议室",
        day: 1,
        start: 9 * 60 + 30,
        minutes: 60,
        state: meeting_state::PUBLISHED,
        members: &[1, 2, 3],
    },
    DemoMeeting {
        title: "新员工入职培训",
        content: "介绍公司制度、OA系统使用、报销流程和信息安全规范，新同事请携带笔记本电脑。",
        location: "培训中心201",
        day: 2,
        start: 14 * 60,
        minutes: 180,
        state: meeting_state::PUBLISHED,
        members: &[2],
    },
    DemoMeeting {
        title: "产品需求评审会",
        content: "评审小程序会议模块二期需求：会议室预订、签到二维码和会议纪要。",
        location: "线上（腾讯会议）",
        day: 3,
        start: 15 * 60,
        minutes: 90,
        state: meeting_state::PUBLISHED,
        members: &[1, 3],
    },
    DemoMeeting {
        title: "客户需求沟通会",
        content: "因客户行程调整，本次会议取消，另行通知。",
        location: "总部2楼洽谈室",
        day: 4,
        start: 10 * 60,
        minutes: 60,
        state: meeting_state::CANCELLED,
        members: &[],
    },
    DemoMeeting {
        title: "第四季度经营分析会",
        content: "财务部汇报季度经营数据，各部门负责人总结目标完成情况并提出改进措施。",
        location: "总部大会议室",
        day: 5,
        start: 10 * 60,
        minutes: 120,
        state: meeting_state::PUBLISHED,
        members: &[1],
    },
    DemoMeeting {
        title: "安全生产专题会议",
        content: "学习安全生产责任制，部署年底消防检查和用电安全排查工作。",
        location: "3号楼一层多功能厅",
        day: 9,
        start: 9 * 60,
        minutes: 90,
        state: meeting_state::PUBLISHED,
        members: &[],
    },
    DemoMeeting {
        title: "年度技术分享大会",
        content: "主题：小程序性能优化与微服务实践。会议资料已上传至共享盘。",
        location: "报告厅",
        day: -3,
        start: 13 * 60 + 30,
        minutes: 240,
        state: meeting_state::PUBLISHED,
        members: &[1, 2, 3],
    },
    DemoMeeting {
        title: "部门团建活动筹备会",
        content: "确定团建时间、地点和预算，征集活动方案。",
        location: "行政部办公室",
        day: -7,
        start: 16 * 60,
        minutes: 45,
        state: meeting_state::PUBLISHED,
        members: &[2, 3],
    },
];

/// (url, link, sort order, enabled). The disabled one shows that only enabled images are served.
const DEMO_SWIPER_IMAGES: [(&str, &str, i32, bool); 4] = [
    (
        "https://picsum.photos/seed/wxauth-swiper-1/750/300",
        "/pages/meeting/list/list",
        10,
        true,
    ),
    (
        "https://picsum.photos/seed/wxauth-swiper-2/750/300",
        "",
        20,
        true,
    ),
    (
        "https://picsum.photos/seed/wxauth-swiper-3/750/300",
        "/pages/user/index",
        30,
        true,
    ),
    (
        "https://picsum.photos/seed/wxauth-swiper-old/750/300",
        "",
        0,
        false,
    ),
];

/// What a load added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub(crate) users: usize,
    pub(crate) meetings: usize,
    pub(crate) members: usize,
    pub(crate) swiper_images: usize,
}

impl SeedReport {
    pub fn is_empty(&self) -> bool {
        *self == SeedReport::default()
    }
}

impl std::fmt::Display for SeedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} users, {} meetings, {} memberships, {} swiper images",
            self.users, self.meetings, self.members, self.swiper_images
        )
    }
}

/// Adds whatever part of the demo data is missing (nothing, the second time).
pub fn seed(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<SeedReport, DbError> {
    conn.transaction(|conn| {
        lock(conn)?;
        seed_locked(conn, now)
    })
}

/// Dev mode's start: loads the demo data only into an app with no meetings and no swiper images,
/// so that a developer's own data is never mixed with it. `None` when it left the data alone.
pub fn seed_if_empty(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Option<SeedReport>, DbError> {
    conn.transaction(|conn| {
        lock(conn)?;
        let meetings: bool =
            diesel::select(exists(meeting::table.select(meeting::id))).get_result(conn)?;
        let images: bool = diesel::select(exists(swiper_image::table.select(swiper_image::id)))
            .get_result(conn)?;
        if meetings || images {
            return Ok(None);
        }
        seed_locked(conn, now).map(Some)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SeedCommandError {
    #[error(
        "refusing to load demo data: WECHAT_APPID is set, so this is a production configuration; \
         add --force to load it anyway"
    )]
    Production,
    #[error("{0}")]
    Setup(#[from] setup::SetupError),
    #[error("{0}")]
    Database(#[from] DbError),
}

/// `wxauth seed-demo [--force]`: prepares the configured database like a start would, then loads
/// the demo data. A production configuration (WECHAT_APPID set) is refused without `--force`,
/// before the database is touched.
pub fn seed_command(config: &Config, force: bool) -> Result<SeedReport, SeedCommandError> {
    if !config.is_dev_mode() && !force {
        return Err(SeedCommandError::Production);
    }
    let pool = setup::prepare(&config.database.url, 1)?;
    let mut conn = pool.get().map_err(DbError::from)?;
    Ok(seed(&mut conn, Utc::now())?)
}

fn lock(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(SEED_LOCK_KEY)
        .execute(conn)?;
    Ok(())
}

fn seed_locked(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<SeedReport, DbError> {
    let mut report = SeedReport::default();

    let mut user_ids = Vec::with_capacity(DEMO_USERS.len());
    for (openid, nickname) in DEMO_USERS {
        report.users += diesel::insert_into(wx_user::table)
            .values(&NewWxUser {
                username: openid.replace('-', "_"),
                nickname: nickname.to_string(),
                avatar: String::new(),
                gender: 0,
                weixin_openid: openid.to_string(),
                unionid: None,
                last_login_time: None,
                last_login_ip: String::new(),
                add_time: now,
                update_time: now,
            })
            .on_conflict(wx_user::weixin_openid)
            .do_nothing()
            .execute(conn)?;
        let id: i64 = wx_user::table
            .filter(wx_user::weixin_openid.eq(openid))
            .select(wx_user::id)
            .first(conn)?;
        user_ids.push(id);
    }

    if let Some(&publisher) = user_ids.first() {
        let published: bool = diesel::select(exists(
            meeting::table.filter(meeting::publisher_id.eq(publisher)),
        ))
        .get_result(conn)?;
        if !published {
            let midnight = china_midnight(now);
            for (n, demo) in DEMO_MEETINGS.iter().enumerate() {
                let start = midnight + TimeDelta::days(demo.day) + TimeDelta::minutes(demo.start);
                let meeting_id: i64 = diesel::insert_into(meeting::table)
                    .values(&NewMeeting {
                        title: demo.title.to_string(),
                        content: demo.content.to_string(),
                        location: demo.location.to_string(),
                        start_time: start,
                        end_time: start + TimeDelta::minutes(demo.minutes),
                        publisher_id: publisher,
                        state: demo.state,
                        cover: format!(
                            "https://picsum.photos/seed/wxauth-meeting-{}/750/400",
                            n + 1
                        ),
                        add_time: now,
                        update_time: now,
                        review_state: crate::domain::review_state::VISIBLE,
                    })
                    .returning(meeting::id)
                    .get_result(conn)?;
                report.meetings += 1;
                let members: Vec<NewMeetingMember> = demo
                    .members
                    .iter()
                    .filter_map(|&i| user_ids.get(i))
                    .map(|&user_id| NewMeetingMember {
                        meeting_id,
                        user_id,
                        // They signed up the day before; for past meetings that is in the past too.
                        join_time: (start - TimeDelta::days(1)).min(now),
                    })
                    .collect();
                report.members += diesel::insert_into(meeting_member::table)
                    .values(&members)
                    .on_conflict_do_nothing()
                    .execute(conn)?;
            }
        }
    }

    let has_images: bool =
        diesel::select(exists(swiper_image::table.select(swiper_image::id))).get_result(conn)?;
    if !has_images {
        let images: Vec<NewSwiperImage> = DEMO_SWIPER_IMAGES
            .iter()
            .map(|&(url, link, sort_order, enabled)| NewSwiperImage {
                url: url.to_string(),
                link: link.to_string(),
                sort_order,
                enabled,
            })
            .collect();
        report.swiper_images += diesel::insert_into(swiper_image::table)
            .values(&images)
            .execute(conn)?;
    }

    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_meetings_fit_the_schema_and_the_story() {
        for m in &DEMO_MEETINGS {
            assert!(m.title.chars().count() <= 100 && !m.title.is_empty());
            assert!(m.location.chars().count() <= 100);
            assert!(m.minutes > 0, "{} must end after it starts", m.title);
            assert!(m.members.iter().all(|&i| i > 0 && i < DEMO_USERS.len()));
        }
        assert!(DEMO_MEETINGS.iter().any(|m| m.day < 0), "some are over");
        assert!(DEMO_MEETINGS.iter().any(|m| m.day > 0), "some are ahead");
    }
}
