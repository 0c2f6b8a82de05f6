//! Meeting reminders by subscribe message: a member's consent through `meeting/subscribe`, and
//! the sender that turns it into one `subscribe/send` shortly before the meeting, exactly once
//! however many instances run, and what it does with WeChat's refusals and bad days.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};
use wxauth::china_time::china_time;
use wxauth::config::Config;
use wxauth::db::schema::{meeting, meeting_reminder, wx_user};
use wxauth::dev::fake_wechat::Fault;

use crate::helpers::{TEST_APPID, TEST_APPID2, TestApp, TestAppBuilder};

const TEMPLATE: &str = "tmpl-meeting-reminder-01";
const ADMIN_TOKEN: &str = "admin-token-for-reminder-tests-01";

/// The default app's template (`REMINDER_TEMPLATE_ID`), and a quick sender.
fn reminders_on(c: &mut Config) {
    c.wechat.apps.miniprograms[0].reminder_template = Some(TEMPLATE.into());
    c.reminders.tick = Duration::from_millis(100);
}

fn with_reminders() -> TestAppBuilder {
    TestApp::builder().config(reminders_on)
}

/// A minute boundary `minutes` ahead (less a few seconds): what a date picker gives.
fn start_in(minutes: i64) -> DateTime<Utc> {
    let t = Utc::now() + TimeDelta::minutes(minutes);
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a time")
}

async fn publish_at(app: &TestApp, token: &str, title: &str, start: DateTime<Utc>) -> i64 {
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let reply = app
        .post(
            "meeting/publish",
            &json!({
                "title": title,
                "content": "议程见附件",
                "location": "3号楼305会议室",
                "startTime": iso(start),
                "endTime": iso(start + TimeDelta::hours(1)),
            }),
            Some(token),
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    reply.body["data"]["id"].as_i64().expect("id")
}

async fn join(app: &TestApp, token: &str, id: i64) {
    let reply = app
        .post("meeting/join", &json!({ "id": id }), Some(token))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

async fn subscribe(app: &TestApp, token: &str, id: i64, result: &str) -> crate::helpers::Reply {
    app.post(
        "meeting/subscribe",
        &json!({ "id": id, "templateId": TEMPLATE, "result": result }),
        Some(token),
    )
    .await
}

/// The messages the fake received for `user`.
fn messages_to(app: &TestApp, user: &str) -> Vec<Value> {
    let openid = app.fake.openid_for(user);
    app.fake
        .subscribe_messages()
        .into_iter()
        .filter(|m| m["touser"] == openid.as_str())
        .collect()
}

/// Waits until the fake has received at least `n` messages.
async fn until_received(app: &TestApp, n: usize, within: Duration) {
    let started = Instant::now();
    while app.fake.subscribe_messages().len() < n {
        assert!(
            started.elapsed() < within,
            "{} messages after {within:?}, expected {n}",
            app.fake.subscribe_messages().len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Moves a meeting's start to `start`: within the lead time, it becomes due. A meeting published
/// beyond the lead time is set up (members, consents, departures) before the sender can see it.
fn starts_at(app: &TestApp, meeting_id: i64, start: DateTime<Utc>) {
    diesel::update(meeting::table.find(meeting_id))
        .set(meeting::start_time.eq(start))
        .execute(&mut app.db())
        .expect("move the meeting");
}

/// Several ticks, for what must not happen.
async fn a_few_ticks() {
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
}

fn reminder_status(app: &TestApp, meeting_id: i64, user: &str) -> Option<i16> {
    meeting_reminder::table
        .inner_join(wx_user::table)
        .filter(meeting_reminder::meeting_id.eq(meeting_id))
        .filter(wx_user::weixin_openid.eq(app.fake.openid_for(user)))
        .select(meeting_reminder::status)
        .first(&mut app.db())
        .optional()
        .expect("query")
}

#[actix_web::test]
async fn one_reminder_goes_to_the_one_member_with_consent_with_fitted_values() {
    let app = with_reminders().admin_token(ADMIN_TOKEN).spawn().await;
    let alice = app.login_ok("alice").await;
    let title = "二零二六年第四季度全体员工工作总结暨明年计划大会";
    let start = start_in(10);
    // Due only once every member below has done what they do.
    let id = publish_at(&app, &alice, title, start_in(30)).await;
    let mut tokens = Vec::new();
    for user in ["bob", "carol", "dave", "erin"] {
        let token = app.login_ok(user).await;
        join(&app, &token, id).await;
        tokens.push(token);
    }
    let (bob, carol, _dave, erin) = (&tokens[0], &tokens[1], &tokens[2], &tokens[3]);
    let reply = subscribe(&app, bob, id, "accept").await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(
        reply.body["data"],
        json!({ "id": id, "templateId": TEMPLATE, "subscribed": true })
    );
    // Declined at WeChat: nothing to send.
    let reply = subscribe(&app, carol, id, "reject").await;
    assert_eq!(reply.body["data"]["subscribed"], false, "{}", reply.raw);
    // dave never subscribes; erin consents, then leaves.
    assert_eq!(
        subscribe(&app, erin, id, "acceptWithAlert").await.errno(),
        0
    );
    let left = app
        .post("meeting/leave", &json!({ "id": id }), Some(erin))
        .await;
    assert_eq!(left.errno(), 0);
    starts_at(&app, id, start);

    until_received(&app, 1, Duration::from_secs(5)).await;
    a_few_ticks().await;
    let all = app.fake.subscribe_messages();
    assert_eq!(all.len(), 1, "one message in all: {all:?}");
    let cst = china_time(start);
    assert_eq!(
        all[0],
        json!({
            "touser": app.fake.openid_for("bob"),
            "template_id": TEMPLATE,
            "page": format!("pages/meeting/detail?id={id}"),
            "miniprogram_state": "formal",
            "lang": "zh_CN",
            "data": {
                "thing1": { "value": "二零二六年第四季度全体员工工作总结暨明…" },
                "time2": { "value": cst.format("%Y年%-m月%-d日 %H:%M").to_string() },
                "thing3": { "value": "3号楼305会议室" },
            },
        })
    );
    assert_eq!(
        all[0]["data"]["thing1"]["value"]
            .as_str()
            .map(|v| v.chars().count()),
        Some(20)
    );
    assert_eq!(reminder_status(&app, id, "bob"), Some(2), "sent");
    assert_eq!(reminder_status(&app, id, "carol"), None);
    assert_eq!(reminder_status(&app, id, "dave"), None);
    assert_eq!(reminder_status(&app, id, "erin"), Some(0), "left: not sent");

    let metrics = app.get_abs("/metrics").await.raw;
    assert!(
        metrics.contains("wxauth_reminders_total{outcome=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("wxauth_reminders_total{outcome=\"failed\"} 0"));
    let status = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(status.body["reminders"]["enabled"], true);
    assert_eq!(
        status.body["reminders"]["counts"]["sent"], 1,
        "{}",
        status.raw
    );
    assert_eq!(status.body["reminders"]["counts"]["waiting"], 1);

    // The member's copy of their data lists the reminder.
    let export = app.get("auth/export", Some(bob)).await;
    assert_eq!(export.errno(), 0, "{}", export.raw);
    let reminders = &export.body["data"]["meetingReminders"];
    assert_eq!(reminders[0]["id"], id, "{}", export.raw);
    assert_eq!(reminders[0]["status"], "sent");
    assert!(reminders[0]["finishedAt"].is_string());

    // A second consent for the same meeting does not make a second reminder.
    let reply = subscribe(&app, bob, id, "accept").await;
    assert_eq!(reply.body["data"]["subscribed"], true);
    a_few_ticks().await;
    assert_eq!(app.fake.subscribe_messages().len(), 1);
}

#[actix_web::test]
async fn two_instances_and_a_restart_send_each_reminder_once() {
    let app = with_reminders().spawn().await;
    let other = app.sibling().await;
    let alice = app.login_ok("alice").await;
    let id = publish_at(&app, &alice, "周例会", start_in(10)).await;
    let members: Vec<String> = (0..12).map(|n| format!("member{n}")).collect();
    for user in &members {
        let token = app.login_ok(user).await;
        join(&app, &token, id).await;
        // Half through each instance.
        let via = if user.ends_with(['0', '2', '4', '6', '8']) {
            &app
        } else {
            &other
        };
        assert_eq!(subscribe(via, &token, id, "accept").await.errno(), 0);
    }
    until_received(&app, members.len(), Duration::from_secs(10)).await;
    // A third instance, as after a restart, while the meeting is still within the lead time.
    let restarted = app.sibling().await;
    a_few_ticks().await;
    for user in &members {
        assert_eq!(messages_to(&app, user).len(), 1, "{user}");
    }
    assert_eq!(app.fake.subscribe_messages().len(), members.len());
    drop(restarted);
}

#[actix_web::test]
async fn a_backlog_beyond_one_claim_goes_out_in_full_the_sooner_meeting_first() {
    // More members than one claim takes (100), in two meetings: the sooner one's first claim is
    // all its own, its rest shares the next claim with the later meeting, and nobody is missed.
    let app = with_reminders()
        .config(|c| c.limits.login_per_ip = 0)
        .spawn()
        .await;
    let alice = app.login_ok("alice").await;
    let later = publish_at(&app, &alice, "季度复盘", start_in(40)).await;
    let sooner = publish_at(&app, &alice, "周例会", start_in(40)).await;
    let mut expected = Vec::new();
    for n in 0..160 {
        let user = format!("member{n}");
        let token = app.login_ok(&user).await;
        let id = if n < 130 { sooner } else { later };
        join(&app, &token, id).await;
        assert_eq!(subscribe(&app, &token, id, "accept").await.errno(), 0);
        expected.push((user, id));
    }
    starts_at(&app, later, start_in(12));
    starts_at(&app, sooner, start_in(10));

    until_received(&app, expected.len(), Duration::from_secs(15)).await;
    a_few_ticks().await;
    for (user, id) in &expected {
        let to_user = messages_to(&app, user);
        assert_eq!(to_user.len(), 1, "{user}");
        assert_eq!(
            to_user[0]["page"],
            format!("pages/meeting/detail?id={id}"),
            "{user}"
        );
    }
    let pages: Vec<String> = app
        .fake
        .subscribe_messages()
        .iter()
        .map(|m| m["page"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(pages.len(), expected.len());
    let sooner_page = format!("pages/meeting/detail?id={sooner}");
    assert!(
        pages[..100].iter().all(|p| *p == sooner_page),
        "the first claim is the sooner meeting's: {pages:?}"
    );
}

#[actix_web::test]
async fn withdrawn_consent_is_dropped_and_a_busy_wechat_is_retried_until_it_answers() {
    let app = with_reminders()
        .config(|c| c.wechat.timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let alice = app.login_ok("alice").await;
    let id = publish_at(&app, &alice, "周例会", start_in(10)).await;
    let faults = [
        ("withdrawn", Fault::Errcode { errcode: 43101 }),
        ("busy", Fault::Busy),
        ("limited", Fault::Errcode { errcode: 45009 }),
        // Answers long after the test: a hang. A shorter delay is a race between two timers, and
        // on a loaded machine the sender's (300 ms) can fire after the answer has come, which
        // makes a send out of what must be a timeout.
        ("hung", Fault::Slow { delay_ms: 60_000 }),
        ("broken", Fault::Errcode { errcode: 40037 }),
    ];
    for (user, fault) in &faults {
        app.fake
            .set_user_fault("subscribe_send", &app.fake.openid_for(user), fault.clone());
        let token = app.login_ok(user).await;
        join(&app, &token, id).await;
        assert_eq!(subscribe(&app, &token, id, "accept").await.errno(), 0);
    }
    // Each tried at least twice except the refused ones, which are settled. A member who
    // subscribed after others' first round is claimed with their second, and that round's
    // outcomes are written only once its slowest send gives up: seeing the others' second
    // message says nothing of the refused ones' rows yet.
    let started = Instant::now();
    while ["busy", "limited", "hung"]
        .iter()
        .any(|u| messages_to(&app, u).len() < 2)
        || ["withdrawn", "broken"]
            .iter()
            .any(|u| matches!(reminder_status(&app, id, u), None | Some(0 | 1)))
    {
        assert!(started.elapsed() < Duration::from_secs(10), "no retries");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        messages_to(&app, "withdrawn").len(),
        1,
        "43101 is not retried"
    );
    assert_eq!(reminder_status(&app, id, "withdrawn"), Some(3));
    assert_eq!(messages_to(&app, "broken").len(), 1, "given up");
    assert_eq!(reminder_status(&app, id, "broken"), Some(4));
    for user in ["busy", "limited", "hung"] {
        let status = reminder_status(&app, id, user);
        assert!(matches!(status, Some(0 | 1)), "{user}: {status:?}");
    }

    // WeChat recovers: each is sent, once.
    for (user, _) in &faults {
        app.fake
            .set_user_fault("subscribe_send", &app.fake.openid_for(user), Fault::None);
    }
    let started = Instant::now();
    while ["busy", "limited", "hung"]
        .iter()
        .any(|u| reminder_status(&app, id, u) != Some(2))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not sent after recovery"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let sent_counts: Vec<usize> = ["busy", "limited", "hung"]
        .iter()
        .map(|u| messages_to(&app, u).len())
        .collect();
    a_few_ticks().await;
    for (user, before) in ["busy", "limited", "hung"].iter().zip(sent_counts) {
        assert_eq!(
            messages_to(&app, user).len(),
            before,
            "{user}: nothing after sent"
        );
    }
    assert_eq!(messages_to(&app, "withdrawn").len(), 1);
    let metrics = app.get_abs("/metrics").await.raw;
    for line in [
        "wxauth_reminders_total{outcome=\"sent\"} 3",
        "wxauth_reminders_total{outcome=\"refused\"} 1",
        "wxauth_reminders_total{outcome=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
}

#[actix_web::test]
async fn nothing_for_cancelled_meetings_disabled_accounts_or_after_the_start() {
    let app = with_reminders().spawn().await;
    let alice = app.login_ok("alice").await;
    // Due only once they are set up: cancelled, the member disabled.
    let cancelled = publish_at(&app, &alice, "取消的会议", start_in(30)).await;
    let usual = publish_at(&app, &alice, "周例会", start_in(30)).await;
    let bob = app.login_ok("bob").await;
    let carol = app.login_ok("carol").await;
    let dave = app.login_ok("dave").await;
    join(&app, &bob, cancelled).await;
    join(&app, &carol, usual).await;
    assert_eq!(subscribe(&app, &bob, cancelled, "accept").await.errno(), 0);
    assert_eq!(subscribe(&app, &carol, usual, "accept").await.errno(), 0);
    // Starts in a few seconds; WeChat is busy for its member until then.
    let soon = publish_at(&app, &alice, "马上开始", Utc::now() + TimeDelta::seconds(2)).await;
    app.fake
        .set_user_fault("subscribe_send", &app.fake.openid_for("dave"), Fault::Busy);
    join(&app, &dave, soon).await;
    assert_eq!(subscribe(&app, &dave, soon, "accept").await.errno(), 0);
    let mut conn = app.db();
    diesel::update(meeting::table.find(cancelled))
        .set(meeting::state.eq(2))
        .execute(&mut conn)
        .expect("cancel");
    diesel::update(wx_user::table.filter(wx_user::weixin_openid.eq(app.fake.openid_for("carol"))))
        .set(wx_user::status.eq(1))
        .execute(&mut conn)
        .expect("disable");
    starts_at(&app, cancelled, start_in(10));
    starts_at(&app, usual, start_in(10));

    // dave's meeting starts; then WeChat would answer, but it is too late.
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let tried_before_start = messages_to(&app, "dave").len();
    app.fake
        .set_user_fault("subscribe_send", &app.fake.openid_for("dave"), Fault::None);
    a_few_ticks().await;
    assert_eq!(
        messages_to(&app, "dave").len(),
        tried_before_start,
        "never after the start"
    );
    assert_ne!(reminder_status(&app, soon, "dave"), Some(2));
    let others: Vec<Value> = app
        .fake
        .subscribe_messages()
        .into_iter()
        .filter(|m| m["touser"] != app.fake.openid_for("dave").as_str())
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(reminder_status(&app, cancelled, "bob"), Some(0));
    assert_eq!(reminder_status(&app, usual, "carol"), Some(0));
}

#[actix_web::test]
async fn subscribe_refusals() {
    let app = with_reminders().spawn().await;
    let alice = app.login_ok("alice").await;
    let bob = app.login_ok("bob").await;
    let id = publish_at(&app, &alice, "周例会", start_in(60)).await;
    let call = |body: Value, token: Option<String>| {
        let app = &app;
        async move { app.post("meeting/subscribe", &body, token.as_deref()).await }
    };
    let not_joined = call(
        json!({ "id": id, "templateId": TEMPLATE, "result": "accept" }),
        Some(bob.clone()),
    )
    .await;
    assert_eq!(not_joined.errno(), 402, "{}", not_joined.raw);
    assert!(
        not_joined.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("join")),
        "{}",
        not_joined.raw
    );
    join(&app, &bob, id).await;
    for (body, errno) in [
        (json!({ "templateId": TEMPLATE, "result": "accept" }), 401),
        (json!({ "id": id, "result": "accept" }), 401),
        (json!({ "id": id, "templateId": TEMPLATE }), 401),
        (
            json!({ "id": id, "templateId": "another", "result": "accept" }),
            402,
        ),
        (
            json!({ "id": id, "templateId": TEMPLATE, "result": "maybe" }),
            402,
        ),
        (
            json!({ "id": 0, "templateId": TEMPLATE, "result": "accept" }),
            402,
        ),
        (
            json!({ "id": 999999, "templateId": TEMPLATE, "result": "accept" }),
            402,
        ),
    ] {
        let reply = call(body.clone(), Some(bob.clone())).await;
        assert_eq!(reply.errno(), errno, "{body}: {}", reply.raw);
    }
    let no_token = call(
        json!({ "id": id, "templateId": TEMPLATE, "result": "accept" }),
        None,
    )
    .await;
    assert_eq!(no_token.errno(), 501);
    let rows: i64 = meeting_reminder::table
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(rows, 0, "nothing stored");
    for result in ["accept", "acceptWithAlert", "acceptWithAudio"] {
        let reply = subscribe(&app, &bob, id, result).await;
        assert_eq!(reply.body["data"]["subscribed"], true, "{result}");
    }
    for result in ["ban", "filter"] {
        let fresh = app.login_ok(&format!("user-{result}")).await;
        join(&app, &fresh, id).await;
        let reply = subscribe(&app, &fresh, id, result).await;
        assert_eq!(reply.body["data"]["subscribed"], false, "{result}");
    }

    // Reminders off: refused.
    let off = TestApp::spawn().await;
    let token = off.login_ok("bob").await;
    let reply = off
        .post(
            "meeting/subscribe",
            &json!({ "id": 1, "templateId": TEMPLATE, "result": "accept" }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.errno(), 402, "{}", reply.raw);
}

const OA_TEMPLATE: &str = "tmpl-oa-meeting-reminder";
const SHOP_TEMPLATE: &str = "tmpl-shop-meeting-reminder";

/// Two mini-programs (`TEST_APPID`, the default, and `TEST_APPID2`), each with its own template
/// (`None`: no reminders in that app), as an apps file gives them.
fn two_apps_with(oa: Option<&'static str>, shop: Option<&'static str>) -> TestAppBuilder {
    TestApp::builder().two_apps().config(move |c| {
        c.wechat.apps.miniprograms[0].reminder_template = oa.map(String::from);
        c.wechat.apps.miniprograms[1].reminder_template = shop.map(String::from);
        c.reminders.tick = Duration::from_millis(100);
    })
}

async fn subscribe_to(
    app: &TestApp,
    token: &str,
    id: i64,
    template: &str,
) -> crate::helpers::Reply {
    app.post(
        "meeting/subscribe",
        &json!({ "id": id, "templateId": template, "result": "accept" }),
        Some(token),
    )
    .await
}

/// The app each reminder of the meeting was recorded for, by member openid in the default app.
fn reminder_apps(app: &TestApp, meeting_id: i64) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = meeting_reminder::table
        .inner_join(wx_user::table)
        .filter(meeting_reminder::meeting_id.eq(meeting_id))
        .select((wx_user::weixin_openid, meeting_reminder::app_id))
        .load(&mut app.db())
        .expect("query");
    rows.sort();
    rows
}

#[actix_web::test]
async fn a_reminder_goes_out_through_the_app_the_member_consented_in() {
    let app = two_apps_with(Some(OA_TEMPLATE), Some(SHOP_TEMPLATE))
        .spawn()
        .await;
    let alice = app.login_in(TEST_APPID, "alice").await.token();
    // Not due yet: the rows are looked at before the sender may take them.
    let id = publish_at(&app, &alice, "周例会", start_in(30)).await;
    // bob uses both apps (one account: one unionid) and consents in the shop; carol in the OA.
    let bob_in_oa = app.login_in(TEST_APPID, "bob").await.token();
    let bob_in_shop = app.login_in(TEST_APPID2, "bob").await.token();
    let carol = app.login_in(TEST_APPID, "carol").await.token();
    join(&app, &bob_in_oa, id).await;
    join(&app, &carol, id).await;

    // A token's app takes its own template only.
    for (token, template) in [(&bob_in_shop, OA_TEMPLATE), (&carol, SHOP_TEMPLATE)] {
        let reply = subscribe_to(&app, token, id, template).await;
        assert_eq!(reply.errno(), 402, "{}", reply.raw);
        assert!(
            reply.body["data"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not this app's")),
            "{}",
            reply.raw
        );
    }
    let reply = subscribe_to(&app, &bob_in_shop, id, SHOP_TEMPLATE).await;
    assert_eq!(
        reply.body["data"],
        json!({ "id": id, "templateId": SHOP_TEMPLATE, "subscribed": true }),
        "{}",
        reply.raw
    );
    assert_eq!(subscribe_to(&app, &carol, id, OA_TEMPLATE).await.errno(), 0);
    let oa_openid = |user| app.fake.openid_in(TEST_APPID, user);
    assert_eq!(
        reminder_apps(&app, id),
        {
            let mut want = vec![
                (oa_openid("bob"), TEST_APPID2.to_string()),
                (oa_openid("carol"), TEST_APPID.to_string()),
            ];
            want.sort();
            want
        },
        "each consent with its app"
    );
    // carol's row as the release before wrote it, without its app: the default app's.
    diesel::update(meeting_reminder::table.filter(meeting_reminder::app_id.eq(TEST_APPID)))
        .set(meeting_reminder::app_id.eq(""))
        .execute(&mut app.db())
        .expect("a row of the release before");

    starts_at(&app, id, start_in(10));
    until_received(&app, 2, Duration::from_secs(5)).await;
    a_few_ticks().await;
    // WeChat saw the shop's access token, template and openid for bob; the OA's for carol.
    let shop = app.fake.subscribe_messages_in(TEST_APPID2);
    assert_eq!(shop.len(), 1, "{shop:?}");
    assert_eq!(shop[0]["touser"], app.fake.openid_in(TEST_APPID2, "bob"));
    assert_eq!(shop[0]["template_id"], SHOP_TEMPLATE);
    assert_eq!(shop[0]["page"], format!("pages/meeting/detail?id={id}"));
    let oa = app.fake.subscribe_messages_in(TEST_APPID);
    assert_eq!(oa.len(), 1, "{oa:?}");
    assert_eq!(oa[0]["touser"], oa_openid("carol"));
    assert_eq!(oa[0]["template_id"], OA_TEMPLATE);
    assert_eq!(app.fake.subscribe_messages().len(), 2, "nothing else");
    assert_eq!(reminder_status(&app, id, "bob"), Some(2));
    assert_eq!(reminder_status(&app, id, "carol"), Some(2));
}

#[actix_web::test]
async fn an_app_without_a_template_answers_that_its_reminders_are_off() {
    let app = two_apps_with(Some(OA_TEMPLATE), None)
        .admin_token(ADMIN_TOKEN)
        .spawn()
        .await;
    let alice = app.login_in(TEST_APPID, "alice").await.token();
    let id = publish_at(&app, &alice, "周例会", start_in(10)).await;
    let bob_in_oa = app.login_in(TEST_APPID, "bob").await.token();
    let bob_in_shop = app.login_in(TEST_APPID2, "bob").await.token();
    join(&app, &bob_in_oa, id).await;

    for template in [OA_TEMPLATE, SHOP_TEMPLATE] {
        let reply = subscribe_to(&app, &bob_in_shop, id, template).await;
        assert_eq!(reply.errno(), 402, "{}", reply.raw);
        assert_eq!(
            reply.body["data"]["reason"], "meeting reminders are off in this mini-program",
            "{}",
            reply.raw
        );
    }
    let rows: i64 = meeting_reminder::table
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(rows, 0, "nothing stored");
    let status = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(status.body["reminders"]["enabled"], true, "the OA has them");

    // In the OA, the same member is reminded, through the OA.
    assert_eq!(
        subscribe_to(&app, &bob_in_oa, id, OA_TEMPLATE)
            .await
            .errno(),
        0
    );
    until_received(&app, 1, Duration::from_secs(5)).await;
    assert_eq!(app.fake.subscribe_messages_in(TEST_APPID).len(), 1);
    assert!(app.fake.subscribe_messages_in(TEST_APPID2).is_empty());

    // A session of an app this instance no longer serves: log in again.
    let without_shop = app
        .sibling_with(|c| c.wechat.apps.miniprograms.truncate(1))
        .await;
    let reply = subscribe_to(&without_shop, &bob_in_shop, id, OA_TEMPLATE).await;
    assert_eq!(reply.errno(), 501, "{}", reply.raw);
}
