//! The happy path, as the mini-program lives it: log in, call, log in again, log out.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use serde_json::json;
use wxauth::db::schema::wx_user;

use crate::helpers::TestApp;

#[actix_web::test]
async fn first_login_creates_the_user_and_answers_token_and_user_info() {
    let app = TestApp::spawn().await;
    let minted = app.code_for("alice");

    let reply = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": minted.code }),
            None,
        )
        .await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["errmsg"], "成功");
    let data = &reply.body["data"];
    assert!(
        data["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    let expire = data["tokenExpire"].as_str().expect("tokenExpire");
    assert_eq!(expire.len(), "2026-01-01 00:00:00".len());
    let info = &data["userInfo"];
    let row = app.user_by_openid(&minted.openid).expect("a user row");
    assert_eq!(info["userId"], row.id);
    assert_eq!(info["nickName"], "微信用户");
    assert_eq!(info["avatarUrl"], "");
    assert_eq!(info["gender"], 0);
    assert_eq!(info["status"], 0);
    assert_eq!(info["userLevel"], 0);
    assert_eq!(info["userLevelDesc"], "普通用户");
    assert!(info.get("phone").is_none(), "no phone before one is bound");
    let today = wxauth::china_time::china_time(Utc::now())
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(info["registerDate"], today);
    // Nothing about the WeChat session reaches the client.
    assert!(!reply.raw.contains("session_key") && !reply.raw.contains("openid"));

    assert_eq!(row.last_login_ip, "127.0.0.1");
    assert!(row.last_login_time.is_some());
    assert_ne!(row.username, minted.openid, "the openid is no credential");
    assert!(!row.deleted);
    assert_eq!(app.count_users(), 1);
}

#[actix_web::test]
async fn second_login_updates_last_login_and_keeps_the_id() {
    let app = TestApp::spawn().await;
    let first = app.login("bob").await;
    let openid = app.fake.openid_for("bob");
    let id = first.body["data"]["userInfo"]["userId"]
        .as_i64()
        .expect("id");
    // Make the first login look old and from elsewhere, so the second one must overwrite both.
    let long_ago = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("date");
    diesel::update(wx_user::table.find(id))
        .set((
            wx_user::last_login_time.eq(long_ago),
            wx_user::last_login_ip.eq("10.9.8.7"),
        ))
        .execute(&mut app.db())
        .expect("update");

    let second = app.login("bob").await;

    assert_eq!(second.errno(), 0);
    assert_eq!(second.body["data"]["userInfo"]["userId"], id);
    let row = app.user_by_openid(&openid).expect("row");
    assert_eq!(row.id, id);
    assert_eq!(row.last_login_ip, "127.0.0.1");
    assert!(row.last_login_time.expect("time") > long_ago);
    assert!(row.update_time > long_ago);
    assert_eq!(app.count_users(), 1);
}

#[actix_web::test]
async fn profile_sent_at_first_login_is_stored_with_emoji_and_kept_on_later_logins() {
    let app = TestApp::spawn().await;
    let code = app.code_for("carol");
    let profile = json!({
        "nickName": "小明😀🎉",
        "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132",
        "gender": 2,
        "country": "CN",
        "language": "zh_CN"
    });

    let reply = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": code.code, "userInfo": profile }),
            None,
        )
        .await;

    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["userInfo"]["nickName"], "小明😀🎉");
    assert_eq!(reply.body["data"]["userInfo"]["gender"], 2);
    let row = app.user_by_openid(&code.openid).expect("row");
    assert_eq!(row.nickname, "小明😀🎉");
    assert_eq!(row.avatar, "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132");
    assert_eq!(row.gender, 2);

    // A later login from a client that sends WeChat's anonymous profile does not wipe it.
    let again = app.code_for("carol");
    let reply = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": again.code, "userInfo": { "nickName": "微信用户", "avatarUrl": "", "gender": 0 } }),
            None,
        )
        .await;
    assert_eq!(reply.errno(), 0);
    assert_eq!(reply.body["data"]["userInfo"]["nickName"], "小明😀🎉");
    assert_eq!(
        app.user_by_openid(&code.openid).expect("row").nickname,
        "小明😀🎉"
    );
}

#[actix_web::test]
async fn token_opens_user_index_until_logout_kills_it() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("dave").await;

    let index = app.get("user/index", Some(&token)).await;
    assert_eq!(index.status, 200);
    assert_eq!(index.errno(), 0);
    assert_eq!(
        index.body["data"],
        json!({ "metting_pubs": 0, "metting_joins": 0 })
    );

    let logout = app.post("auth/logout", &json!({}), Some(&token)).await;
    assert_eq!(logout.errno(), 0);
    assert_eq!(logout.body["errmsg"], "成功");

    let after = app.get("user/index", Some(&token)).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.errno(), 501);
    assert_eq!(after.body["errmsg"], "请登录");
    // A replayed logout is just as dead.
    assert_eq!(
        app.post("auth/logout", &json!({}), Some(&token))
            .await
            .errno(),
        501
    );
    // The user row stays: logout ends a session, not an account.
    assert_eq!(app.count_users(), 1);
}

#[actix_web::test]
async fn each_login_is_its_own_session() {
    let app = TestApp::spawn().await;
    let phone = app.login_ok("erin").await;
    let tablet = app.login_ok("erin").await;
    assert_ne!(phone, tablet);

    assert_eq!(
        app.post("auth/logout", &json!({}), Some(&phone))
            .await
            .errno(),
        0
    );

    assert_eq!(app.get("user/index", Some(&phone)).await.errno(), 501);
    assert_eq!(app.get("user/index", Some(&tablet)).await.errno(), 0);
}

#[actix_web::test]
async fn twenty_concurrent_first_logins_of_one_openid_make_one_row() {
    let app = TestApp::spawn().await;
    let bodies: Vec<serde_json::Value> = (0..20)
        .map(|_| json!({ "code": app.code_for("frank").code }))
        .collect();

    let replies = futures_util::future::join_all(
        bodies
            .iter()
            .map(|body| app.post("auth/login_by_weixin", body, None)),
    )
    .await;

    let ids: std::collections::HashSet<i64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.errno(), 0, "{}", r.raw);
            r.body["data"]["userInfo"]["userId"].as_i64().expect("id")
        })
        .collect();
    assert_eq!(ids.len(), 1, "every login saw the same user");
    assert_eq!(app.count_users(), 1);
    assert_eq!(app.fake.calls("jscode2session"), 20);
}

#[actix_web::test]
async fn a_double_tap_sends_one_code_to_wechat_once_and_logs_in_both_requests() {
    let app = TestApp::spawn().await;
    // Slow WeChat keeps the first exchange in flight while the second request arrives.
    app.fake
        .set_fault(wxauth::dev::fake_wechat::Fault::Slow { delay_ms: 300 });
    let code = app.code_for("gina").code;
    let body = json!({ "code": code });

    let (a, b) = futures_util::future::join(app.post("auth/login_by_weixin", &body, None), async {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        app.post("auth/login_by_weixin", &body, None).await
    })
    .await;

    assert_eq!(a.errno(), 0, "{}", a.raw);
    assert_eq!(b.errno(), 0, "{}", b.raw);
    assert_eq!(app.fake.calls("jscode2session"), 1);
    assert_eq!(
        a.body["data"]["userInfo"]["userId"],
        b.body["data"]["userInfo"]["userId"]
    );
    assert_eq!(app.count_users(), 1);
    // Once the first exchange is over, the code is spent, as at WeChat.
    assert_eq!(
        app.post("auth/login_by_weixin", &body, None).await.errno(),
        711
    );
}

#[actix_web::test]
async fn dev_mode_serves_its_own_wechat_fake_over_http() {
    let app = TestApp::builder().dev_mode().spawn().await;

    let mut minted = app
        .http
        .post(format!("{}/__wechat/fake/code?user=alice", app.base))
        .send()
        .await
        .expect("mint request");
    assert_eq!(minted.status().as_u16(), 200);
    let minted: serde_json::Value = minted.json().await.expect("mint json");
    let code = minted["code"].as_str().expect("code");

    let reply = app
        .post("auth/login_by_weixin", &json!({ "code": code }), None)
        .await;

    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let openid = minted["openid"].as_str().expect("openid");
    assert!(app.user_by_openid(openid).is_some());
    assert_eq!(app.get("user/index", Some(&reply.token())).await.errno(), 0);
}

#[actix_web::test]
async fn dev_mode_fake_plays_wecom_for_its_demo_corp() {
    let app = TestApp::builder().dev_mode().spawn().await;
    let fake = format!("{}/__wechat", app.base);
    let post = |path: String| {
        let http = app.http.clone();
        async move {
            let mut r = http.post(path).send().await.expect("request");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body)
        }
    };

    let (status, minted) = post(format!("{fake}/fake/wecom/code?userid=zhangsan")).await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["corpid"], "wwdevfake00000000");
    assert_eq!(minted["userid"], "zhangsan");
    let code = minted["code"].as_str().expect("code");
    assert_eq!(post(format!("{fake}/fake/wecom/code")).await.0, 400);
    assert_eq!(
        post(format!("{fake}/fake/wecom/code?userid=a&corpid=wwunknown"))
            .await
            .0,
        400
    );

    // WeCom's endpoints, as WeCom answers them: HTTP 200, an errcode in the body.
    let wrong_secret = app
        .get_with(
            &format!("{fake}/cgi-bin/gettoken?corpid=wwdevfake00000000&corpsecret=guess"),
            &[],
        )
        .await;
    assert_eq!(wrong_secret.status, 200);
    assert_eq!(wrong_secret.body["errcode"], 40001);
    assert_eq!(wrong_secret.header("content-type"), Some("text/plain"));
    let bad_token = app
        .get_with(
            &format!(
                "{fake}/cgi-bin/miniprogram/jscode2session?access_token=guess&js_code={code}&grant_type=authorization_code"
            ),
            &[],
        )
        .await;
    assert_eq!(bad_token.body["errcode"], 40014);
    let stats = app.get_with(&format!("{fake}/fake/stats"), &[]).await;
    assert_eq!(stats.body["calls"]["gettoken"], 1);
    assert_eq!(stats.body["calls"]["wecom_jscode2session"], 1);
}

#[actix_web::test]
async fn health_answers_when_the_database_does() {
    let app = TestApp::spawn().await;
    let health = app.get_abs("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["database"], "ok");
}
