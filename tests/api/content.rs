//! Content security: what users publish goes through WeChat's msgSecCheck (the fake's word
//! lists) before others see it; risky text is refused with nothing stored, text WeChat wants
//! reviewed waits for an admin, and a check that cannot be made is never a pass.

use diesel::prelude::*;
use serde_json::json;
use wxauth::config::CheckFailure;
use wxauth::db::schema::{meeting, wx_user};
use wxauth::dev::fake_wechat::{Fault, REVIEW_WORDS, RISKY_WORDS};

use crate::helpers::{Reply, TestApp, meeting_body};

const ADMIN_TOKEN: &str = "admin-token-for-content-tests-0123";

/// Publishes a valid meeting with `text` in `field` (none when `field` is empty); the answer,
/// whatever it is.
async fn publish(app: &TestApp, token: &str, field: &str, text: &str) -> Reply {
    let mut body = meeting_body("周例会", 3);
    if !field.is_empty() {
        body[field] = json!(text);
    }
    app.post("meeting/publish", &body, Some(token)).await
}

fn meetings_stored(app: &TestApp) -> Vec<(i64, String, i16)> {
    meeting::table
        .select((meeting::id, meeting::title, meeting::review_state))
        .order(meeting::id)
        .load(&mut app.db())
        .expect("meetings")
}

fn listed_ids(reply: &Reply, list: &str) -> Vec<i64> {
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let items = match list {
        "" => &reply.body["data"]["list"],
        key => &reply.body["data"][key],
    };
    items
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect()
}

#[actix_web::test]
async fn risky_text_in_any_field_is_refused_with_nothing_stored() {
    let (app, token) = TestApp::with_user("alice").await;
    for field in ["title", "content", "location"] {
        let text = format!("这里有{}的内容", RISKY_WORDS[0]);
        let reply = publish(&app, &token, field, &text).await;
        assert_eq!(reply.errno(), 730, "{field}: {}", reply.raw);
        assert_eq!(reply.body["errmsg"], "内容含有违规信息，请修改后再试");
        assert_eq!(reply.body["data"]["field"], field, "{}", reply.raw);
    }
    assert!(meetings_stored(&app).is_empty(), "nothing stored");
    assert_eq!(
        app.fake.calls("msg_sec_check"),
        9,
        "three fields, three times"
    );

    // Clean text passes and is shown as before.
    let reply = publish(&app, &token, "", "").await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["review"], "visible");
    assert_eq!(meetings_stored(&app).len(), 1);
}

#[actix_web::test]
async fn a_stale_access_token_is_refreshed_once_for_the_check() {
    let (app, token) = TestApp::with_user("alice").await;
    let first = publish(&app, &token, "", "").await;
    assert_eq!(first.errno(), 0, "{}", first.raw);
    app.fake.invalidate_access_tokens();
    let second = publish(&app, &token, "title", "第二次会议").await;
    assert_eq!(second.errno(), 0, "{}", second.raw);
    assert_eq!(app.fake.calls("stable_token"), 2, "one fetch, one refresh");
}

#[actix_web::test]
async fn text_for_review_is_hidden_until_approved_and_gone_when_rejected() {
    let app = TestApp::builder().admin_token(ADMIN_TOKEN).spawn().await;
    let alice = app.login_ok("alice").await;
    let bob = app.login_ok("bob").await;
    let review_text = format!("内容{}", REVIEW_WORDS[0]);

    let pending = publish(&app, &alice, "content", &review_text).await;
    assert_eq!(pending.errno(), 0, "{}", pending.raw);
    assert_eq!(pending.body["data"]["review"], "pending");
    let id = pending.body["data"]["id"].as_i64().expect("id");
    assert_eq!(meetings_stored(&app), vec![(id, "周例会".to_string(), 1)]);

    // Nobody else sees it: not in the list, not on the home page, not by its id.
    for token in [None, Some(bob.as_str()), Some(alice.as_str())] {
        let list = app.get("meeting/list", token).await;
        assert!(!listed_ids(&list, "").contains(&id), "{}", list.raw);
        assert_eq!(list.body["data"]["total"], 0);
        let home = app.get("home/index", token).await;
        assert!(!listed_ids(&home, "upcomingMeetings").contains(&id));
    }
    for token in [None, Some(bob.as_str())] {
        let detail = app.get(&format!("meeting/detail?id={id}"), token).await;
        assert_eq!(detail.errno(), 402, "{}", detail.raw);
    }
    let join = app
        .post("meeting/join", &json!({ "id": id }), Some(&bob))
        .await;
    assert_eq!(join.errno(), 402, "{}", join.raw);
    // Its publisher does.
    let own = app
        .get(&format!("meeting/detail?id={id}"), Some(&alice))
        .await;
    assert_eq!(own.errno(), 0, "{}", own.raw);
    assert_eq!(own.body["data"]["review"], "pending");

    // The status page lists it.
    let status = app
        .get_with(
            &format!("{}/admin/api/status", app.base),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["pending_review"][0]["id"], id, "{}", status.raw);
    assert_eq!(status.body["pending_review"][0]["content"], review_text);

    // Approve: everyone sees it.
    assert_eq!(
        app.admin_post(&format!("meetings/{id}/approve"), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.admin_post(
            &format!("meetings/{id}/approve"),
            Some("wrong-token-0123456789")
        )
        .await
        .status,
        403
    );
    let approved = app
        .admin_post(&format!("meetings/{id}/approve"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.raw);
    assert_eq!(approved.body, json!({ "id": id, "review": "visible" }));
    let list = app.get("meeting/list", Some(&bob)).await;
    assert_eq!(listed_ids(&list, ""), vec![id]);
    let home = app.get("home/index", None).await;
    assert_eq!(listed_ids(&home, "upcomingMeetings"), vec![id]);
    assert_eq!(
        app.get(&format!("meeting/detail?id={id}"), None)
            .await
            .errno(),
        0
    );

    // Reject (here: a takedown of the approved one): gone from every list, its publisher can
    // still open it, and it cannot be approved again.
    let rejected = app
        .admin_post(&format!("meetings/{id}/reject"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.raw);
    assert_eq!(rejected.body["review"], "rejected");
    assert_eq!(meetings_stored(&app)[0].2, 2);
    assert!(listed_ids(&app.get("meeting/list", None).await, "").is_empty());
    assert!(listed_ids(&app.get("home/index", None).await, "upcomingMeetings").is_empty());
    assert_eq!(
        app.get(&format!("meeting/detail?id={id}"), Some(&bob))
            .await
            .errno(),
        402
    );
    let own = app
        .get(&format!("meeting/detail?id={id}"), Some(&alice))
        .await;
    assert_eq!(own.body["data"]["review"], "rejected", "{}", own.raw);
    let again = app
        .admin_post(&format!("meetings/{id}/approve"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(again.status, 409, "{}", again.raw);
    assert_eq!(meetings_stored(&app)[0].2, 2, "still rejected");

    assert_eq!(
        app.admin_post("meetings/999999/approve", Some(ADMIN_TOKEN))
            .await
            .status,
        404
    );
    assert_eq!(
        app.admin_post("meetings/abc/reject", Some(ADMIN_TOKEN))
            .await
            .status,
        400
    );
    assert_eq!(
        app.admin_post("meetings/0/reject", Some(ADMIN_TOKEN))
            .await
            .status,
        400
    );
}

fn nickname_of(app: &TestApp, user: &str) -> String {
    wx_user::table
        .filter(wx_user::weixin_openid.eq(app.fake.openid_for(user)))
        .select(wx_user::nickname)
        .first(&mut app.db())
        .expect("user")
}

#[actix_web::test]
async fn nicknames_are_checked_and_a_doubtful_one_is_refused() {
    let (app, token) = TestApp::with_user("alice").await;
    let before = nickname_of(&app, "alice");
    for word in [RISKY_WORDS[1], REVIEW_WORDS[1]] {
        let reply = app
            .post(
                "auth/profile",
                &json!({ "nickName": format!("x{word}") }),
                Some(&token),
            )
            .await;
        assert_eq!(reply.errno(), 730, "{}", reply.raw);
        assert_eq!(reply.body["data"]["field"], "nickName");
        assert_eq!(nickname_of(&app, "alice"), before, "nothing stored");
    }
    // A gender alone has nothing to check.
    let calls = app.fake.calls("msg_sec_check");
    let reply = app
        .post("auth/profile", &json!({ "gender": 1 }), Some(&token))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(app.fake.calls("msg_sec_check"), calls);
    let reply = app
        .post("auth/profile", &json!({ "nickName": "小明" }), Some(&token))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(nickname_of(&app, "alice"), "小明");
    assert_eq!(app.fake.calls("msg_sec_check"), calls + 1);
}

#[actix_web::test]
async fn a_check_that_cannot_be_made_refuses_by_default() {
    let app = TestApp::builder()
        .config(|c| c.wechat.timeout = std::time::Duration::from_millis(300))
        .spawn()
        .await;
    let token = app.login_ok("alice").await;
    let cases = [
        (Fault::Busy, 714),
        (Fault::Errcode { errcode: 44991 }, 714),
        (Fault::Garbage, 716),
        (Fault::Errcode { errcode: 61010 }, 716),
        (Fault::Slow { delay_ms: 1000 }, 715),
    ];
    for (fault, errno) in cases {
        app.fake.set_fault_on("msg_sec_check", fault.clone());
        let reply = publish(&app, &token, "", "").await;
        assert_eq!(reply.errno(), errno, "{fault:?}: {}", reply.raw);
        let reply = app
            .post("auth/profile", &json!({ "nickName": "小红" }), Some(&token))
            .await;
        assert_eq!(reply.errno(), errno, "nickname, {fault:?}: {}", reply.raw);
    }
    app.fake.set_fault_on("msg_sec_check", Fault::None);
    // 61010 for this user only: the user has not opened the mini-program in two hours.
    let openid = app.fake.openid_for("alice");
    app.fake
        .set_user_fault("msg_sec_check", &openid, Fault::Errcode { errcode: 61010 });
    let reply = publish(&app, &token, "", "").await;
    assert_eq!(reply.errno(), 716, "{}", reply.raw);
    assert!(meetings_stored(&app).is_empty(), "nothing stored");
    assert_ne!(nickname_of(&app, "alice"), "小红");
    // Another user is checked as usual.
    let bob = app.login_ok("bob").await;
    let reply = publish(&app, &bob, "", "").await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
}

#[actix_web::test]
async fn a_check_that_cannot_be_made_is_a_review_when_so_configured() {
    let app = TestApp::builder()
        .config(|c| c.content.on_error = CheckFailure::Review)
        .spawn()
        .await;
    let token = app.login_ok("alice").await;
    app.fake.set_fault_on("msg_sec_check", Fault::Busy);
    let reply = publish(&app, &token, "", "").await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["review"], "pending");
    let stored = meetings_stored(&app);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].2, 1, "pending review");
    assert!(listed_ids(&app.get("meeting/list", None).await, "").is_empty());
    // A nickname has nothing pending: still refused.
    let reply = app
        .post("auth/profile", &json!({ "nickName": "小红" }), Some(&token))
        .await;
    assert_eq!(reply.errno(), 714, "{}", reply.raw);
    // A risky text is still refused even when another field could not be checked.
    app.fake.set_fault_on("msg_sec_check", Fault::None);
    let openid = app.fake.openid_for("alice");
    app.fake
        .set_user_fault("msg_sec_check", &openid, Fault::None);
    let reply = publish(&app, &token, "title", RISKY_WORDS[0]).await;
    assert_eq!(reply.errno(), 730, "{}", reply.raw);
    assert_eq!(meetings_stored(&app).len(), 1);
}

#[actix_web::test]
async fn content_check_off_calls_nothing() {
    let app = TestApp::builder()
        .config(|c| c.content.check = false)
        .spawn()
        .await;
    let token = app.login_ok("alice").await;
    let reply = publish(&app, &token, "title", RISKY_WORDS[0]).await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["review"], "visible");
    let reply = app
        .post(
            "auth/profile",
            &json!({ "nickName": RISKY_WORDS[0] }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(app.fake.calls("msg_sec_check"), 0);
    assert_eq!(meetings_stored(&app)[0].2, 0);
}

#[actix_web::test]
async fn a_slow_check_is_cut_to_the_request_s_deadline() {
    // WeChat's own timeout would allow more than the client waits: the request's deadline wins.
    let app = TestApp::builder()
        .config(|c| c.wechat.timeout = std::time::Duration::from_secs(10))
        .spawn()
        .await;
    let token = app.login_ok("alice").await;
    app.fake
        .set_fault_on("msg_sec_check", Fault::Slow { delay_ms: 5000 });
    let started = std::time::Instant::now();
    let reply = publish(&app, &token, "", "").await;
    let took = started.elapsed();
    assert_eq!(reply.errno(), 715, "{}", reply.raw);
    assert!(took < std::time::Duration::from_millis(2800), "{took:?}");
    assert!(meetings_stored(&app).is_empty());
}

#[actix_web::test]
async fn the_dev_fake_s_controls_work_over_http() {
    let app = TestApp::builder().dev_mode().spawn().await;
    let token = app.login_ok("alice").await;
    let set = app
        .http
        .post(format!(
            "{}/__wechat/fake/user_fault?endpoint=msg_sec_check&user=alice",
            app.base
        ))
        .send_json(&json!({ "mode": "errcode", "errcode": 61010 }))
        .await
        .expect("control");
    assert_eq!(set.status().as_u16(), 200);
    let reply = publish(&app, &token, "", "").await;
    assert_eq!(reply.errno(), 716, "61010 for alice: {}", reply.raw);
    let bob = app.login_ok("bob").await;
    let reply = publish(&app, &bob, "content", REVIEW_WORDS[1]).await;
    assert_eq!(reply.body["data"]["review"], "pending", "{}", reply.raw);
    let sent = app.get_abs("/__wechat/fake/subscribe_messages").await;
    assert_eq!(sent.status, 200);
    assert_eq!(sent.body, json!([]));
}
