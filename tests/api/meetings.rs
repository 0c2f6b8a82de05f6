//! The OA meeting app behind the login, as the mini-program uses it: the home page and its
//! swiper, the meeting list, publishing, joining and leaving, the counts on the user's page, and
//! the demo data a developer sees in dev mode.

use std::collections::HashSet;
use std::process::Output;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use wxauth::config::WeChatMode;
use wxauth::db::demo::{self, DEMO_PUBLISHER_OPENID};
use wxauth::db::models::NewSwiperImage;
use wxauth::db::schema::{meeting, meeting_member, swiper_image};

use crate::binary::BinaryApp;
use crate::helpers::{Reply, TEST_APPID, TestApp, id_of, iso, meeting_body, meeting_body_at};

// ---- the story's props ----

/// `hours` from now.
fn at(hours: i64) -> String {
    iso(Utc::now() + TimeDelta::hours(hours))
}

async fn join(app: &TestApp, token: &str, id: i64) -> Reply {
    app.post("meeting/join", &json!({ "id": id }), Some(token))
        .await
}

async fn leave(app: &TestApp, token: &str, id: i64) -> Reply {
    app.post("meeting/leave", &json!({ "id": id }), Some(token))
        .await
}

async fn user_index(app: &TestApp, token: &str) -> Value {
    let reply = app.get("user/index", Some(token)).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    reply.body["data"].clone()
}

/// Logs in with a nickname, so that `publisherNickname` has something to show.
async fn login_as(app: &TestApp, user: &str, nickname: &str) -> (String, i64) {
    let code = app.code_for(user).code;
    let reply = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": code, "userInfo": { "nickName": nickname } }),
            None,
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let id = reply.body["data"]["userInfo"]["userId"]
        .as_i64()
        .expect("userId");
    (reply.token(), id)
}

fn assert_402(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 200, "{what}");
    assert_eq!(reply.errno(), 402, "{what}: {}", reply.raw);
    assert_eq!(reply.body["errmsg"], "参数值不对", "{what}");
}

// ---- the rows behind the answers ----

fn count_meetings(app: &TestApp) -> i64 {
    meeting::table
        .count()
        .get_result(&mut app.db())
        .expect("count")
}

fn count_members(app: &TestApp) -> i64 {
    meeting_member::table
        .count()
        .get_result(&mut app.db())
        .expect("count")
}

fn members_of(app: &TestApp, meeting_id: i64) -> Vec<i64> {
    meeting_member::table
        .filter(meeting_member::meeting_id.eq(meeting_id))
        .select(meeting_member::user_id)
        .order(meeting_member::user_id)
        .load(&mut app.db())
        .expect("members")
}

fn count_swiper_images(app: &TestApp) -> i64 {
    swiper_image::table
        .count()
        .get_result(&mut app.db())
        .expect("count")
}

fn cancel(app: &TestApp, meeting_id: i64) {
    let n = diesel::update(meeting::table.find(meeting_id))
        .set(meeting::state.eq(2i16))
        .execute(&mut app.db())
        .expect("cancel");
    assert_eq!(n, 1);
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time string"))
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

// ---- empty app ----

#[actix_web::test]
async fn an_empty_app_answers_empty_lists_and_gets_no_demo_data_in_production_mode() {
    // The harness's default app has WECHAT_APPID set: production mode.
    let app = TestApp::spawn().await;

    let swiper = app.get("swiperImgs", None).await;
    assert_eq!(swiper.status, 200);
    assert_eq!(swiper.errno(), 0, "{}", swiper.raw);
    assert_eq!(swiper.body["data"], json!([]));

    let list = app.get("meeting/list", None).await;
    assert_eq!(list.errno(), 0, "{}", list.raw);
    assert_eq!(
        list.body["data"],
        json!({ "list": [], "total": 0, "page": 1, "limit": 10, "pages": 0 })
    );

    let home = app.get("home/index", None).await;
    assert_eq!(home.errno(), 0, "{}", home.raw);
    assert_eq!(
        home.body["data"],
        json!({ "swiperImgs": [], "upcomingMeetings": [] })
    );
    assert_eq!(count_meetings(&app), 0);
    assert_eq!(count_swiper_images(&app), 0);
    assert_eq!(app.count_users(), 0, "no demo users either");
}

// ---- the list ----

#[actix_web::test]
async fn twenty_five_meetings_page_newest_start_first_without_repeats() {
    let (app, token) = TestApp::with_user("alice").await;
    // Pairs share a start time, so only the id can keep the pages apart.
    let base = Utc::now();
    for n in 0..25 {
        let start = base + TimeDelta::hours(1 + n / 2);
        app.publish(&token, &meeting_body_at(&format!("部门例会 {n:02}"), start))
            .await;
    }

    let mut seen = Vec::new();
    for (page, expected_len) in [(1, 10), (2, 10), (3, 5)] {
        let reply = app
            .get(&format!("meeting/list?page={page}&limit=10"), None)
            .await;
        assert_eq!(reply.errno(), 0, "{}", reply.raw);
        let data = &reply.body["data"];
        assert_eq!(data["total"], 25);
        assert_eq!(data["pages"], 3);
        assert_eq!(data["page"], page);
        assert_eq!(data["limit"], 10);
        let list = data["list"].as_array().expect("list");
        assert_eq!(list.len(), expected_len, "page {page}");
        seen.extend(list.iter().cloned());
    }
    let ids: HashSet<i64> = seen.iter().map(id_of).collect();
    assert_eq!(ids.len(), 25, "every meeting exactly once over the pages");
    for pair in seen.windows(2) {
        let (a, b) = (time(&pair[0]["startTime"]), time(&pair[1]["startTime"]));
        assert!(a >= b, "newest start first");
        if a == b {
            assert!(id_of(&pair[0]) > id_of(&pair[1]), "ties: newest id first");
        }
    }
    assert_eq!(seen[0]["title"], "部门例会 24");
    assert_eq!(seen[24]["title"], "部门例会 00");

    let past_the_end = app.get("meeting/list?page=4&limit=10", None).await;
    assert_eq!(past_the_end.errno(), 0);
    assert_eq!(past_the_end.body["data"]["list"], json!([]));
    assert_eq!(past_the_end.body["data"]["total"], 25);

    let defaults = app.get("meeting/list?page=&limit=&state=", None).await;
    assert_eq!(defaults.errno(), 0, "{}", defaults.raw);
    assert_eq!(defaults.body["data"]["page"], 1);
    assert_eq!(defaults.body["data"]["limit"], 10);
    assert_eq!(
        defaults.body["data"]["list"].as_array().map(Vec::len),
        Some(10)
    );

    let all = app.get("meeting/list?limit=100", None).await;
    assert_eq!(all.body["data"]["list"].as_array().map(Vec::len), Some(25));
    assert_eq!(all.body["data"]["pages"], 1);
    let seven = app.get("meeting/list?limit=7&page=4", None).await;
    assert_eq!(seven.body["data"]["pages"], 4);
    assert_eq!(seven.body["data"]["list"].as_array().map(Vec::len), Some(4));
}

#[actix_web::test]
async fn page_limit_and_state_out_of_range_are_402() {
    let app = TestApp::spawn().await;
    for (query, param) in [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page=2147483648", "page"),
        ("page=99999999999999999999999", "page"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-10", "limit"),
        ("limit=ten", "limit"),
        ("page=2&limit=1000", "limit"),
        ("state=0", "state"),
        ("state=3", "state"),
        ("state=published", "state"),
    ] {
        let reply = app.get(&format!("meeting/list?{query}"), None).await;
        assert_402(&reply, query);
        let reason = reply.body["data"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(param), "{query}: {reason}");
    }
    // The bounds themselves are fine.
    for query in [
        "page=1&limit=1",
        "page=2147483647&limit=100",
        "state=1",
        "state=2",
    ] {
        let reply = app.get(&format!("meeting/list?{query}"), None).await;
        assert_eq!(reply.errno(), 0, "{query}: {}", reply.raw);
    }
}

#[actix_web::test]
async fn the_list_filters_by_state() {
    let (app, token) = TestApp::with_user("alice").await;
    let kept = app.publish(&token, &meeting_body("项目周例会", 24)).await;
    let dropped = app
        .publish(&token, &meeting_body("客户需求沟通会", 48))
        .await;
    cancel(&app, id_of(&dropped));

    let cancelled = app.get("meeting/list?state=2", None).await;
    assert_eq!(cancelled.errno(), 0, "{}", cancelled.raw);
    assert_eq!(cancelled.body["data"]["total"], 1);
    assert_eq!(cancelled.body["data"]["list"][0]["id"], id_of(&dropped));
    assert_eq!(cancelled.body["data"]["list"][0]["state"], 2);

    let published = app.get("meeting/list?state=1", None).await;
    assert_eq!(published.body["data"]["total"], 1);
    assert_eq!(published.body["data"]["list"][0]["id"], id_of(&kept));

    let everything = app.get("meeting/list", None).await;
    assert_eq!(everything.body["data"]["total"], 2);
}

// ---- publish ----

#[actix_web::test]
async fn publish_refuses_missing_and_bad_fields_and_stores_nothing() {
    let (app, token) = TestApp::with_user("alice").await;
    let valid = meeting_body("项目周例会", 24);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().expect("object").remove(field);
        body
    };
    let start = valid["startTime"].clone();

    let cases: Vec<(Value, i64, &str)> = vec![
        (without("title"), 401, "title"),
        (with("title", json!("")), 401, "title"),
        (with("title", json!("   ")), 401, "title"),
        (with("title", json!(null)), 401, "title"),
        (without("content"), 401, "content"),
        (without("location"), 401, "location"),
        (without("startTime"), 401, "startTime"),
        (without("endTime"), 401, "endTime"),
        (with("title", json!("会".repeat(101))), 402, "title"),
        (with("title", json!("第一行\n第二行")), 402, "title"),
        (with("title", json!(12345)), 402, "title must be a string"),
        (with("location", json!("室".repeat(101))), 402, "location"),
        (with("content", json!("字".repeat(2001))), 402, "content"),
        (with("startTime", json!("tomorrow")), 402, "startTime"),
        (
            with("startTime", json!("2030/01/02 09:00")),
            402,
            "startTime",
        ),
        (
            with("startTime", json!(1893546000)),
            402,
            "startTime must be a string",
        ),
        (
            with("endTime", json!("2030-13-01T09:00:00")),
            402,
            "endTime",
        ),
        (with("endTime", start.clone()), 402, "endTime"),
        (with("endTime", json!(at(23))), 402, "endTime"),
        (
            with("cover", json!("ftp://img.example.com/a.png")),
            402,
            "cover",
        ),
        (with("cover", json!("javascript:alert(1)")), 402, "cover"),
    ];
    for (body, errno, mentions) in &cases {
        let reply = app.post("meeting/publish", body, Some(&token)).await;
        assert_eq!(reply.status, 200, "{body}");
        assert_eq!(reply.errno(), *errno, "{body}: {}", reply.raw);
        let reason = reply.body["data"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(mentions), "{body}: {reason}");
    }
    for raw in ["", "not json", "{\"title\":"] {
        let reply = app.post_raw("meeting/publish", raw, Some(&token)).await;
        assert_eq!(reply.errno(), 401, "{raw:?}: {}", reply.raw);
    }
    assert_eq!(count_meetings(&app), 0, "nothing refused was stored");

    // The limits are inclusive: exactly 100 characters is a title.
    let longest = "会".repeat(100);
    let published = app.publish(&token, &with("title", json!(longest))).await;
    let stored: String = meeting::table
        .find(id_of(&published))
        .select(meeting::title)
        .first(&mut app.db())
        .expect("row");
    assert_eq!(stored, longest);
}

#[actix_web::test]
async fn a_published_meeting_shows_in_the_list_the_detail_and_the_home_page() {
    let app = TestApp::spawn().await;
    let (token, alice) = login_as(&app, "alice", "行政部小王").await;

    // No offset: the picker's local time, China Standard Time.
    let cover = "https://img.example.com/covers/weekly.png";
    let published = app
        .publish(
            &token,
            &json!({
                "title": "  第四季度经营分析会  ",
                "content": "财务部汇报季度经营数据。\n请各部门负责人准时参加。",
                "location": "总部大会议室",
                "startTime": "2030-01-02T09:00:00",
                "endTime": "2030-01-02T10:30",
                "cover": cover,
            }),
        )
        .await;

    let id = id_of(&published);
    assert_eq!(published["title"], "第四季度经营分析会", "trimmed");
    assert_eq!(
        published["content"],
        "财务部汇报季度经营数据。\n请各部门负责人准时参加。"
    );
    assert_eq!(published["location"], "总部大会议室");
    assert_eq!(published["startTime"], "2030-01-02T09:00:00+08:00");
    assert_eq!(published["endTime"], "2030-01-02T10:30:00+08:00");
    assert_eq!(published["state"], 1);
    assert_eq!(published["cover"], cover);
    assert_eq!(published["publisherId"], alice);
    assert_eq!(published["publisherNickname"], "行政部小王");
    assert_eq!(published["memberCount"], 0);
    assert!(
        published["addTime"]
            .as_str()
            .is_some_and(|t| t.ends_with("+08:00"))
    );

    let (start, end, publisher, state): (DateTime<Utc>, DateTime<Utc>, i64, i16) = meeting::table
        .find(id)
        .select((
            meeting::start_time,
            meeting::end_time,
            meeting::publisher_id,
            meeting::state,
        ))
        .first(&mut app.db())
        .expect("row");
    assert_eq!(start, Utc.with_ymd_and_hms(2030, 1, 2, 1, 0, 0).unwrap());
    assert_eq!(end, Utc.with_ymd_and_hms(2030, 1, 2, 2, 30, 0).unwrap());
    assert_eq!((publisher, state), (alice, 1));

    // With Z: stored as given, shown in China Standard Time.
    let utc_clock = app
        .publish(
            &token,
            &json!({
                "title": "产品需求评审会",
                "content": "评审二期需求。",
                "location": "线上",
                "startTime": "2030-01-01T01:00:00Z",
                "endTime": "2030-01-01T02:00:00Z",
            }),
        )
        .await;
    assert_eq!(utc_clock["startTime"], "2030-01-01T09:00:00+08:00");
    assert_eq!(utc_clock["cover"], "");

    let list = app.get("meeting/list", None).await;
    assert_eq!(list.body["data"]["total"], 2);
    assert_eq!(list.body["data"]["list"][0], published, "later start first");
    assert_eq!(list.body["data"]["list"][1], utc_clock);

    let detail = app.get(&format!("meeting/detail?id={id}"), None).await;
    assert_eq!(detail.errno(), 0, "{}", detail.raw);
    assert_eq!(detail.body["data"], published);

    let home = app.get("home/index", None).await;
    assert_eq!(
        home.body["data"]["upcomingMeetings"],
        json!([utc_clock, published])
    );
}

// ---- the home page ----

#[actix_web::test]
async fn home_shows_enabled_swiper_images_in_order_and_the_next_five_upcoming_meetings() {
    let app = TestApp::spawn().await;
    let image = |url: &str, sort_order: i32, enabled: bool| NewSwiperImage {
        url: format!("https://img.example.com/{url}.jpg"),
        link: format!("/pages/{url}"),
        sort_order,
        enabled,
    };
    diesel::insert_into(swiper_image::table)
        .values(&vec![
            image("second", 20, true),
            image("first", 10, true),
            image("hidden", 5, false),
            image("third", 20, true),
        ])
        .execute(&mut app.db())
        .expect("insert images");

    let token = app.login_ok("alice").await;
    // Published out of order, plus a past, an ongoing and a cancelled one that must not show.
    for hours in [7, 3, 1, 6, 2, 5, 4] {
        app.publish(&token, &meeting_body(&format!("{hours}小时后的会"), hours))
            .await;
    }
    app.publish(&token, &meeting_body("已经开过的会", -5)).await;
    app.publish(
        &token,
        &json!({
            "title": "正在开的会", "content": "进行中", "location": "会议室",
            "startTime": at(-1), "endTime": at(1),
        }),
    )
    .await;
    let called_off = app.publish(&token, &meeting_body("取消的会", 1)).await;
    cancel(&app, id_of(&called_off));

    let swiper = app.get("swiperImgs", None).await;
    assert_eq!(swiper.errno(), 0, "{}", swiper.raw);
    let urls: Vec<&str> = swiper.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|i| i["url"].as_str())
        .collect();
    assert_eq!(
        urls,
        [
            "https://img.example.com/first.jpg",
            "https://img.example.com/second.jpg",
            "https://img.example.com/third.jpg",
        ]
    );
    assert_eq!(swiper.body["data"][0]["link"], "/pages/first");

    let home = app.get("home/index", None).await;
    assert_eq!(home.errno(), 0, "{}", home.raw);
    assert_eq!(home.body["data"]["swiperImgs"], swiper.body["data"]);
    let titles: Vec<&str> = home.body["data"]["upcomingMeetings"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "1小时后的会",
            "2小时后的会",
            "3小时后的会",
            "4小时后的会",
            "5小时后的会"
        ]
    );
}

// ---- join and leave ----

#[actix_web::test]
async fn joining_twice_counts_once_and_leaving_twice_is_no_error() {
    let (app, alice) = TestApp::with_user("alice").await;
    let (bob, bob_id) = login_as(&app, "bob", "小明").await;
    let (carol, carol_id) = login_as(&app, "carol", "小红").await;
    let id = id_of(
        &app.publish(&alice, &meeting_body("新员工入职培训", 24))
            .await,
    );

    let first = join(&app, &bob, id).await;
    assert_eq!(first.errno(), 0, "{}", first.raw);
    assert_eq!(
        first.body["data"],
        json!({ "id": id, "joined": true, "memberCount": 1 })
    );
    let again = join(&app, &bob, id).await;
    assert_eq!(again.errno(), 0, "{}", again.raw);
    assert_eq!(again.body["data"], first.body["data"]);
    assert_eq!(members_of(&app, id), [bob_id]);

    assert_eq!(join(&app, &carol, id).await.body["data"]["memberCount"], 2);
    let detail = app.get(&format!("meeting/detail?id={id}"), None).await;
    assert_eq!(detail.body["data"]["memberCount"], 2);
    let listed = app.get("meeting/list", None).await;
    assert_eq!(listed.body["data"]["list"][0]["memberCount"], 2);

    let left = leave(&app, &bob, id).await;
    assert_eq!(left.errno(), 0, "{}", left.raw);
    assert_eq!(
        left.body["data"],
        json!({ "id": id, "joined": false, "memberCount": 1 })
    );
    let left_again = leave(&app, &bob, id).await;
    assert_eq!(left_again.errno(), 0, "{}", left_again.raw);
    assert_eq!(left_again.body["data"], left.body["data"]);
    assert_eq!(members_of(&app, id), [carol_id]);
}

#[actix_web::test]
async fn twenty_concurrent_joins_of_one_user_make_one_row() {
    let (app, alice) = TestApp::with_user("alice").await;
    let (bob, bob_id) = login_as(&app, "bob", "小明").await;
    let id = id_of(
        &app.publish(&alice, &meeting_body("年度技术分享大会", 48))
            .await,
    );

    let replies = futures_util::future::join_all((0..20).map(|_| join(&app, &bob, id))).await;

    for reply in &replies {
        assert_eq!(reply.errno(), 0, "{}", reply.raw);
        assert_eq!(reply.body["data"]["memberCount"], 1);
    }
    assert_eq!(members_of(&app, id), [bob_id]);
    assert_eq!(user_index(&app, &bob).await["metting_joins"], 1);
}

#[actix_web::test]
async fn cancelled_and_finished_meetings_cannot_be_joined_but_members_stay_members() {
    let (app, alice) = TestApp::with_user("alice").await;
    let bob = app.login_ok("bob").await;
    let carol = app.login_ok("carol").await;
    let over = id_of(
        &app.publish(&alice, &meeting_body("部门团建活动筹备会", -3))
            .await,
    );
    let called_off = id_of(
        &app.publish(&alice, &meeting_body("客户需求沟通会", 24))
            .await,
    );
    let soon = id_of(
        &app.publish(&alice, &meeting_body("安全生产专题会议", 48))
            .await,
    );
    cancel(&app, called_off);

    let late = join(&app, &bob, over).await;
    assert_402(&late, "finished");
    assert!(
        late.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ended"))
    );
    let refused = join(&app, &bob, called_off).await;
    assert_402(&refused, "cancelled");
    assert!(
        refused.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cancelled"))
    );
    assert_eq!(count_members(&app), 0);

    // Bob joined before it was called off: asking again still answers joined.
    assert_eq!(join(&app, &bob, soon).await.errno(), 0);
    cancel(&app, soon);
    let again = join(&app, &bob, soon).await;
    assert_eq!(again.errno(), 0, "{}", again.raw);
    assert_eq!(again.body["data"]["memberCount"], 1);
    assert_402(&join(&app, &carol, soon).await, "cancelled, new member");
    assert_eq!(count_members(&app), 1);
}

#[actix_web::test]
async fn unknown_and_missing_meeting_ids() {
    let (app, token) = TestApp::with_user("alice").await;
    let real = id_of(&app.publish(&token, &meeting_body("项目周例会", 24)).await);
    let unknown = real + 1000;

    let missing = app.get("meeting/detail", None).await;
    assert_eq!(missing.errno(), 401, "{}", missing.raw);
    assert_eq!(app.get("meeting/detail?id=", None).await.errno(), 401);
    for query in ["id=abc", "id=0", "id=-1", "id=1.5"] {
        assert_402(
            &app.get(&format!("meeting/detail?{query}"), None).await,
            query,
        );
    }
    let nowhere = app.get(&format!("meeting/detail?id={unknown}"), None).await;
    assert_402(&nowhere, "unknown id");
    assert!(
        nowhere.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&unknown.to_string()))
    );

    for path in ["meeting/join", "meeting/leave"] {
        for body in [json!({}), json!({ "id": null })] {
            let reply = app.post(path, &body, Some(&token)).await;
            assert_eq!(reply.errno(), 401, "{path} {body}: {}", reply.raw);
        }
        for body in [
            json!({ "id": unknown }),
            json!({ "id": 0 }),
            json!({ "id": -3 }),
            json!({ "id": "1" }),
            json!({ "id": 1.5 }),
        ] {
            assert_402(
                &app.post(path, &body, Some(&token)).await,
                &format!("{path} {body}"),
            );
        }
    }
    assert_eq!(count_members(&app), 0);
}

// ---- the user's page ----

#[actix_web::test]
async fn user_index_counts_follow_publish_join_and_leave() {
    let (app, alice) = TestApp::with_user("alice").await;
    let bob = app.login_ok("bob").await;
    let zero = json!({ "metting_pubs": 0, "metting_joins": 0 });
    assert_eq!(user_index(&app, &alice).await, zero);

    let weekly = id_of(&app.publish(&alice, &meeting_body("项目周例会", 24)).await);
    let review = id_of(
        &app.publish(&alice, &meeting_body("产品需求评审会", 48))
            .await,
    );
    assert_eq!(
        user_index(&app, &alice).await,
        json!({ "metting_pubs": 2, "metting_joins": 0 })
    );
    assert_eq!(user_index(&app, &bob).await, zero);

    assert_eq!(join(&app, &bob, weekly).await.errno(), 0);
    assert_eq!(join(&app, &bob, review).await.errno(), 0);
    assert_eq!(join(&app, &bob, review).await.errno(), 0);
    assert_eq!(join(&app, &alice, weekly).await.errno(), 0);
    assert_eq!(
        user_index(&app, &bob).await,
        json!({ "metting_pubs": 0, "metting_joins": 2 })
    );
    assert_eq!(
        user_index(&app, &alice).await,
        json!({ "metting_pubs": 2, "metting_joins": 1 })
    );

    assert_eq!(leave(&app, &bob, weekly).await.errno(), 0);
    assert_eq!(leave(&app, &bob, weekly).await.errno(), 0);
    assert_eq!(
        user_index(&app, &bob).await,
        json!({ "metting_pubs": 0, "metting_joins": 1 })
    );
}

#[actix_web::test]
async fn concurrent_user_index_reads_of_many_users_each_get_their_own_counts() {
    // Reads that arrive together share a statement: none may get another user's numbers, and
    // one that arrives after a join sees it.
    // The default pool: under a loaded machine a late listener heartbeat can send every token
    // check to the database, and sixty of those at once must still fit the reads lane.
    let (app, alice) = TestApp::with_user("alice").await;
    let bob = app.login_ok("bob").await;
    let carol = app.login_ok("carol").await;
    let weekly = id_of(&app.publish(&alice, &meeting_body("项目周例会", 24)).await);
    id_of(
        &app.publish(&alice, &meeting_body("产品需求评审会", 48))
            .await,
    );
    assert_eq!(join(&app, &bob, weekly).await.errno(), 0);
    // Carol opens her page once: her session is then checked from the cache.
    assert_eq!(user_index(&app, &carol).await["metting_pubs"], 0);

    let expected = [
        (&alice, json!({ "metting_pubs": 2, "metting_joins": 0 })),
        (&bob, json!({ "metting_pubs": 0, "metting_joins": 1 })),
        (&carol, json!({ "metting_pubs": 0, "metting_joins": 0 })),
    ];
    let reads = (0..60).map(|i| {
        let (token, want) = &expected[i % 3];
        let app = &app;
        async move { (user_index(app, token).await, want.clone()) }
    });
    for (got, want) in futures_util::future::join_all(reads).await {
        assert_eq!(got, want);
    }

    assert_eq!(join(&app, &carol, weekly).await.errno(), 0);
    let after = (0..20).map(|_| user_index(&app, &carol));
    for got in futures_util::future::join_all(after).await {
        assert_eq!(got, json!({ "metting_pubs": 0, "metting_joins": 1 }));
    }
}

#[actix_web::test]
async fn publish_join_leave_and_user_index_need_a_token_the_rest_is_public() {
    let (app, alice) = TestApp::with_user("alice").await;
    let id = id_of(&app.publish(&alice, &meeting_body("项目周例会", 24)).await);
    let logged_out = app.login_ok("bob").await;
    assert_eq!(
        app.post("auth/logout", &json!({}), Some(&logged_out))
            .await
            .errno(),
        0
    );

    for token in [None, Some("not-a-token"), Some(logged_out.as_str())] {
        let why = format!("token {token:?}");
        let calls = [
            app.post("meeting/publish", &meeting_body("无权发布", 24), token)
                .await,
            app.post("meeting/join", &json!({ "id": id }), token).await,
            app.post("meeting/leave", &json!({ "id": id }), token).await,
            app.get("user/index", token).await,
        ];
        for reply in &calls {
            assert_eq!(reply.status, 200, "{why}");
            assert_eq!(reply.errno(), 501, "{why}: {}", reply.raw);
            assert_eq!(reply.body["errmsg"], "请登录");
        }
    }
    assert_eq!(count_meetings(&app), 1);
    assert_eq!(count_members(&app), 0);

    for path in [
        "swiperImgs".to_string(),
        "home/index".to_string(),
        "meeting/list".to_string(),
        format!("meeting/detail?id={id}"),
    ] {
        let reply = app.get(&path, None).await;
        assert_eq!(reply.errno(), 0, "{path}: {}", reply.raw);
    }
}

// ---- demo data ----

/// Runs the wxauth binary against the test's database, with nothing of the developer's
/// environment leaking in.
fn wxauth(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    BinaryApp::builder()
        .args(args)
        .env("DATABASE_URL", &app.db_url)
        .envs(env)
        .run()
}

#[derive(Debug, PartialEq, Eq)]
struct Rows {
    users: i64,
    meetings: i64,
    members: i64,
    swiper_images: i64,
}

fn rows(app: &TestApp) -> Rows {
    Rows {
        users: app.count_users(),
        meetings: count_meetings(app),
        members: count_members(app),
        swiper_images: count_swiper_images(app),
    }
}

/// Another dev-mode instance starting on the test's database; it serves until the test ends, as
/// the harness's own app does.
async fn start_dev_instance(app: &TestApp) {
    app.sibling_with(|c| {
        c.wechat.mode = WeChatMode::Dev;
        c.database.pool_size = 1;
        c.http.workers = 1;
    })
    .await;
}

#[actix_web::test]
async fn dev_mode_loads_the_demo_data_once() {
    let app = TestApp::builder().dev_mode().spawn().await;

    let loaded = rows(&app);
    assert!(loaded.meetings >= 5, "{loaded:?}");
    assert!(loaded.members > 0 && loaded.swiper_images > 0, "{loaded:?}");
    assert!(app.user_by_openid(DEMO_PUBLISHER_OPENID).is_some());

    let list = app.get("meeting/list?limit=100", None).await;
    assert_eq!(list.errno(), 0, "{}", list.raw);
    assert_eq!(list.body["data"]["total"], loaded.meetings);
    let meetings = list.body["data"]["list"].as_array().expect("list");
    let now = Utc::now();
    assert!(
        meetings.iter().any(|m| time(&m["startTime"]) > now),
        "some ahead"
    );
    assert!(
        meetings.iter().any(|m| time(&m["endTime"]) < now),
        "some over"
    );
    assert!(
        meetings
            .iter()
            .all(|m| m["title"].as_str().is_some_and(|t| !t.is_ascii())),
        "Chinese titles"
    );
    assert!(meetings.iter().all(|m| m["publisherNickname"] != ""));
    let home = app.get("home/index", None).await;
    assert!(
        !home.body["data"]["swiperImgs"]
            .as_array()
            .expect("list")
            .is_empty()
    );
    assert!(
        !home.body["data"]["upcomingMeetings"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    // Again, three ways: the functions, another dev start, the command. Nothing is added.
    let report = demo::seed(&mut app.db(), Utc::now()).expect("seed");
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(
        demo::seed_if_empty(&mut app.db(), Utc::now()).expect("seed"),
        None
    );
    start_dev_instance(&app).await;
    let out = wxauth(&app, &["seed-demo"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing added"));
    assert_eq!(rows(&app), loaded);
}

#[actix_web::test]
async fn demo_data_never_lands_in_production_or_next_to_real_meetings_by_itself() {
    // A production app: WECHAT_APPID set. Its start loaded nothing (see the empty-app test).
    let (app, token) = TestApp::with_user("alice").await;
    app.publish(&token, &meeting_body("真实的会议", 24)).await;
    let real = rows(&app);

    // A dev start on a database that already has meetings leaves it alone.
    start_dev_instance(&app).await;
    assert_eq!(rows(&app), real);

    let production = [
        ("WECHAT_APPID", TEST_APPID),
        ("WECHAT_SECRET", "s3cret"),
        ("JWT_SECRET", "jwt-secret-for-the-seed-demo-test"),
    ];
    let refused = wxauth(&app, &["seed-demo"], &production);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(rows(&app), real);

    let usage = wxauth(&app, &["seed-demo", "--yes"], &[]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    assert_eq!(rows(&app), real);

    let forced = wxauth(&app, &["seed-demo", "--force"], &production);
    assert_eq!(forced.status.code(), Some(0), "{forced:?}");
    assert!(String::from_utf8_lossy(&forced.stdout).contains("demo data loaded"));
    let seeded = rows(&app);
    assert!(
        seeded.meetings > real.meetings && seeded.swiper_images > 0,
        "{seeded:?}"
    );
    assert!(app.user_by_openid(DEMO_PUBLISHER_OPENID).is_some());

    let twice = wxauth(&app, &["seed-demo", "--force"], &production);
    assert_eq!(twice.status.code(), Some(0), "{twice:?}");
    assert_eq!(rows(&app), seeded);
}

#[actix_web::test]
async fn hostile_cover_urls_are_refused_with_the_reason_and_store_nothing() {
    let (app, token) = TestApp::with_user("alice").await;
    for (url, reason) in crate::profile::HOSTILE_URLS {
        let mut body = meeting_body("封面测试", 24);
        body["cover"] = json!(url);
        let reply = app.post("meeting/publish", &body, Some(&token)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.errno(), 402, "{url:?}: {}", reply.raw);
        let said = reply.body["data"]["reason"].as_str().unwrap_or_default();
        assert!(
            said.contains("cover") && said.contains(reason),
            "{url:?}: {said}"
        );
    }
    assert_eq!(count_meetings(&app), 0, "nothing refused was stored");

    let mut body = meeting_body("封面测试", 24);
    body["cover"] = json!("https://IMG.example.com/covers/1.png?size=large#top");
    let published = app.publish(&token, &body).await;
    assert_eq!(
        published["cover"],
        "https://img.example.com/covers/1.png?size=large#top"
    );
}

#[actix_web::test]
async fn meeting_times_outside_the_years_2000_to_2100_are_402_naming_the_field() {
    let (app, token) = TestApp::with_user("alice").await;
    let valid = meeting_body("项目周例会", 24);
    let with = |field: &str, value: &str| {
        let mut body = valid.clone();
        body[field] = json!(value);
        body
    };
    for (field, time) in [
        ("startTime", "0000-01-01T09:00:00+08:00"),
        ("startTime", "1999-12-31T23:59:59+08:00"),
        ("startTime", "0099-06-01T09:00:00Z"),
        ("endTime", "2101-01-01T00:00:00+08:00"),
        ("endTime", "9999-12-31T23:59:59"),
    ] {
        let reply = app
            .post("meeting/publish", &with(field, time), Some(&token))
            .await;
        assert_402(&reply, time);
        assert_eq!(
            reply.body["data"]["reason"]
                .as_str()
                .unwrap_or_default()
                .split(" (got")
                .next(),
            Some(format!("{field} must be in the years 2000 to 2100").as_str()),
            "{time}: {}",
            reply.raw
        );
    }
    // A negative year is no ISO 8601 time a client sends: refused as such.
    let negative = app
        .post(
            "meeting/publish",
            &with("startTime", "-0001-06-01T09:00:00Z"),
            Some(&token),
        )
        .await;
    assert_402(&negative, "a negative year");
    assert_eq!(count_meetings(&app), 0, "nothing refused was stored");

    // The edges are years a meeting may be in (China Standard Time, as the client means it).
    let mut edges = valid.clone();
    edges["startTime"] = json!("2000-01-01T00:00:00+08:00");
    edges["endTime"] = json!("2100-12-31T23:59:59+08:00");
    app.publish(&token, &edges).await;
    assert_eq!(count_meetings(&app), 1);
}

#[actix_web::test]
async fn invisible_or_reordering_text_in_a_meeting_is_402_and_stores_nothing() {
    let (app, token) = TestApp::with_user("alice").await;
    let valid = meeting_body("项目周例会", 24);
    let with = |field: &str, value: &str| {
        let mut body = valid.clone();
        body[field] = json!(value);
        body
    };
    for (field, text, says) in [
        ("title", "invoice\u{202E}fdp.exe", "U+202E"),
        ("title", "\u{200B}\u{200B}\u{200B}", "visible characters"),
        ("location", "\u{2067}会议室", "U+2067"),
        ("location", "\u{200D} \u{2060}", "visible characters"),
        ("content", "议程\u{FEFF}", "U+FEFF"),
        ("content", "议程\n\u{200E}", "U+200E"),
        ("content", "\u{200B}\n\u{200C}", "visible characters"),
        ("title", "会\u{FFFF}", "U+FFFF"),
    ] {
        let reply = app
            .post("meeting/publish", &with(field, text), Some(&token))
            .await;
        assert_402(&reply, text);
        let reason = reply.body["data"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(field) && reason.contains(says),
            "{text:?}: {reason}"
        );
    }
    assert_eq!(count_meetings(&app), 0, "nothing refused was stored");

    let family = "家庭聚会 👨\u{200D}👩\u{200D}👧";
    let published = app.publish(&token, &with("title", family)).await;
    assert_eq!(
        published["title"], family,
        "an emoji sequence keeps its joiners"
    );
}
