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

use crate::helpers::{TestApp, TestAppBuilder};

const TEMPLATE: &str = "tmpl-meeting-reminder-01";
const ADMIN_TOKEN: &str = "admin-token-for-reminder-tests-01";

fn reminders_on(c: &mut Config) {
    c.reminders.template_id = Some(TEMPLATE.into());
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
    let id = publish_at(&app, &alice, title, start).await;
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
async fn withdrawn_consent_is_dropped_and_a_busy_wechat_is_retried_until_it_answers() {
    let app = with_reminders()
        .config(|c| c.wechat_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let alice = app.login_ok("alice").await;
    let id = publish_at(&app, &alice, "周例会", start_in(10)).await;
    let faults = [
        ("withdrawn", Fault::Errcode { errcode: 43101 }),
        ("busy", Fault::Busy),
        ("limited", Fault::Errcode { errcode: 45009 }),
        ("hung", Fault::Slow { delay_ms: 1000 }),
        ("broken", Fault::Errcode { errcode: 40037 }),
    ];
    for (user, fault) in &faults {
        app.fake
            .set_user_fault("subscribe_send", &app.fake.openid_for(user), fault.clone());
        let token = app.login_ok(user).await;
        join(&app, &token, id).await;
        assert_eq!(subscribe(&app, &token, id, "accept").await.errno(), 0);
    }
    // Each tried at least twice except the refused ones.
    let started = Instant::now();
    while ["busy", "limited", "hung"]
        .iter()
        .any(|u| messages_to(&app, u).len() < 2)
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
    let cancelled = publish_at(&app, &alice, "取消的会议", start_in(10)).await;
    let usual = publish_at(&app, &alice, "周例会", start_in(10)).await;
    // Starts in a few seconds; WeChat is busy for its member until then.
    let soon = publish_at(&app, &alice, "马上开始", Utc::now() + TimeDelta::seconds(2)).await;
    let bob = app.login_ok("bob").await;
    let carol = app.login_ok("carol").await;
    let dave = app.login_ok("dave").await;
    // The sender must not see these before they are set up.
    app.fake
        .set_user_fault("subscribe_send", &app.fake.openid_for("bob"), Fault::Busy);
    app.fake
        .set_user_fault("subscribe_send", &app.fake.openid_for("carol"), Fault::Busy);
    join(&app, &bob, cancelled).await;
    join(&app, &carol, usual).await;
    join(&app, &dave, soon).await;
    assert_eq!(subscribe(&app, &bob, cancelled, "accept").await.errno(), 0);
    assert_eq!(subscribe(&app, &carol, usual, "accept").await.errno(), 0);
    app.fake
        .set_user_fault("subscribe_send", &app.fake.openid_for("dave"), Fault::Busy);
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
    let before = app.fake.subscribe_messages().len();
    app.fake
        .set_user_fault("subscribe_send", &app.fake.openid_for("bob"), Fault::None);
    app.fake
        .set_user_fault("subscribe_send", &app.fake.openid_for("carol"), Fault::None);

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
    let after: Vec<Value> = app.fake.subscribe_messages()[before..]
        .iter()
        .filter(|m| m["touser"] != app.fake.openid_for("dave").as_str())
        .cloned()
        .collect();
    assert!(after.is_empty(), "{after:?}");
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
