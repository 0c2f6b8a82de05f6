//! The profile after login (WeChat's current flow), the signed profile of old clients, and unionid.

use serde_json::json;

use crate::helpers::TestApp;

#[actix_web::test]
async fn a_profile_filled_in_after_login_is_stored_and_seen_on_later_logins() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("alice").await;
    let avatar = "https://thirdwx.qlogo.cn/mmopen/vi_32/xyz/132";

    let reply = app
        .post(
            "auth/profile",
            &json!({ "nickname": "  爱丽丝🌸  ", "avatar": avatar, "gender": 2 }),
            Some(&token),
        )
        .await;

    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let info = &reply.body["data"];
    assert_eq!(info["nickName"], "爱丽丝🌸");
    assert_eq!(info["avatarUrl"], avatar);
    assert_eq!(info["gender"], 2);
    let row = app
        .user_by_openid(&app.fake.openid_for("alice"))
        .expect("row");
    assert_eq!(
        (row.nickname.as_str(), row.avatar.as_str(), row.gender),
        ("爱丽丝🌸", avatar, 2)
    );

    let later = app.login("alice").await;
    assert_eq!(later.body["data"]["userInfo"]["nickName"], "爱丽丝🌸");
    assert_eq!(later.body["data"]["userInfo"]["avatarUrl"], avatar);

    let shown = app.get("auth/info", Some(&later.token())).await;
    assert_eq!(shown.errno(), 0);
    assert_eq!(
        shown.body["data"],
        json!({ "nickName": "爱丽丝🌸", "avatar": avatar, "gender": 2, "mobile": "" })
    );
}

#[actix_web::test]
async fn one_field_at_a_time_leaves_the_others_alone() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("bob").await;
    app.post("auth/profile", &json!({ "nickname": "Bob" }), Some(&token))
        .await;
    let reply = app
        .post("auth/profile", &json!({ "gender": 1 }), Some(&token))
        .await;
    assert_eq!(reply.errno(), 0);
    assert_eq!(reply.body["data"]["nickName"], "Bob");
    assert_eq!(reply.body["data"]["gender"], 1);
}

#[actix_web::test]
async fn profile_validation_errors_store_nothing() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("carol").await;
    let cases = [
        (json!({ "nickname": "" }), 402),
        (json!({ "nickname": "   " }), 402),
        (json!({ "nickname": "名".repeat(65) }), 402),
        (json!({ "nickname": "a\u{0007}b" }), 402),
        (json!({ "avatar": "ftp://x/y.png" }), 402),
        (json!({ "avatar": "not a url" }), 402),
        (
            json!({ "avatar": format!("https://x/{}", "a".repeat(520)) }),
            402,
        ),
        (json!({ "gender": 3 }), 402),
        (json!({ "gender": -1 }), 402),
        (json!({ "gender": "f" }), 402),
        (json!({}), 401),
    ];
    for (body, errno) in &cases {
        let reply = app.post("auth/profile", body, Some(&token)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.errno(), *errno, "{body}: {}", reply.raw);
    }
    // 64 characters is still fine.
    let ok = app
        .post(
            "auth/profile",
            &json!({ "nickname": "名".repeat(64) }),
            Some(&token),
        )
        .await;
    assert_eq!(ok.errno(), 0);
    assert_eq!(
        app.post("auth/profile", &json!({ "nickname": "x" }), None)
            .await
            .errno(),
        501
    );
    assert_eq!(app.get("auth/info", None).await.errno(), 501);
    let row = app
        .user_by_openid(&app.fake.openid_for("carol"))
        .expect("row");
    assert_eq!(row.nickname, "名".repeat(64));
    assert_eq!((row.avatar.as_str(), row.gender), ("", 0));
}

#[actix_web::test]
async fn a_signed_profile_is_verified_against_the_session_key() {
    let app = TestApp::spawn().await;
    let minted = app.code_for("dave");
    let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1/0"}"#;
    let signature = app
        .fake
        .sign_raw_data(&minted.openid, raw)
        .expect("signature");

    let reply = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": minted.code, "rawData": raw, "signature": signature }),
            None,
        )
        .await;

    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    assert_eq!(reply.body["data"]["userInfo"]["nickName"], "Band");
    let row = app.user_by_openid(&minted.openid).expect("row");
    assert_eq!((row.nickname.as_str(), row.gender), ("Band", 1));
}

#[actix_web::test]
async fn a_signature_mismatch_refuses_the_login_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let minted = app.code_for("erin");
    let raw = r#"{"nickName":"Mallory","gender":1}"#;
    let forged = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";

    let reply = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": minted.code, "rawData": raw, "signature": forged }),
            None,
        )
        .await;

    assert_eq!(reply.errno(), 719, "{}", reply.raw);
    assert!(reply.body["data"].is_null());
    assert_eq!(app.count_users(), 0);

    let half = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": app.code_for("erin").code, "rawData": raw }),
            None,
        )
        .await;
    assert_eq!(half.errno(), 401, "rawData needs its signature");
    let not_json = app
        .post(
            "auth/login_by_weixin",
            &json!({ "code": app.code_for("erin").code, "rawData": "nope", "signature": forged }),
            None,
        )
        .await;
    assert_eq!(not_json.errno(), 402);
    assert_eq!(app.count_users(), 0);
}

#[actix_web::test]
async fn unionid_is_stored_when_wechat_returns_it_and_kept_after() {
    let app = TestApp::spawn().await;
    let openid = app.fake.openid_for("frank");
    let with = app.fake.mint_code_for(
        &openid,
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA"),
        std::time::Duration::ZERO,
    );
    assert_eq!(
        app.post("auth/login_by_weixin", &json!({ "code": with.code }), None)
            .await
            .errno(),
        0
    );
    assert_eq!(
        app.user_by_openid(&openid).expect("row").unionid.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
    // A later answer without unionid does not erase it.
    app.login_ok("frank").await;
    assert_eq!(
        app.user_by_openid(&openid).expect("row").unionid.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
}

/// URLs that a prefix check let through or that break out of the attribute a client puts them
/// in, each with the words its refusal must use.
pub const HOSTILE_URLS: &[(&str, &str)] = &[
    (r#"http://x"onerror="alert(1)"#, "quotes"),
    ("http://x'onerror='alert(1)", "quotes"),
    ("https://img.example.com/a.png`", "backquotes"),
    ("https://img.example.com/<script>", "angle brackets"),
    (
        r"https://img.example.com\@evil.example/a.png",
        "backslashes",
    ),
    ("https://img.example.com/a b.png", "spaces"),
    ("https://img.example.com/a\u{3000}b.png", "spaces"),
    ("https://img.example.com/a\tb.png", "control characters"),
    (
        "https://img.example.com/a\u{0000}.png",
        "control characters",
    ),
    (
        "https://img.example.com/a\u{007f}.png",
        "control characters",
    ),
    (
        "https://img.example.com/a\u{200b}\u{0085}.png",
        "control characters",
    ),
    (
        "https://user:pass@img.example.com/a.png",
        "user name or password",
    ),
    (
        "https://admin@img.example.com/a.png",
        "user name or password",
    ),
    ("https://:pw@img.example.com/a.png", "user name or password"),
    ("javascript:alert(1)//https://x", "http(s) URL with a host"),
    ("data:image/png;base64,AAAA", "http(s) URL with a host"),
    ("http://", "http(s) URL with a host"),
    ("http://[::1", "http(s) URL with a host"),
    ("https://exa%00mple.com/a.png", "http(s) URL with a host"),
];

#[actix_web::test]
async fn hostile_avatar_urls_are_refused_with_the_reason_and_store_nothing() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("oscar").await;
    for (url, reason) in HOSTILE_URLS {
        let reply = app
            .post("auth/profile", &json!({ "avatar": url }), Some(&token))
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.errno(), 402, "{url:?}: {}", reply.raw);
        let said = reply.body["data"]["reason"].as_str().unwrap_or_default();
        assert!(
            said.contains("avatar") && said.contains(reason),
            "{url:?}: {said}"
        );

        let code = app.code_for("oscar").code;
        let login = app
            .post(
                "auth/login_by_weixin",
                &json!({ "code": code, "userInfo": { "avatarUrl": url } }),
                None,
            )
            .await;
        assert_eq!(login.errno(), 402, "{url:?}: {}", login.raw);
    }
    let row = app
        .user_by_openid(&app.fake.openid_for("oscar"))
        .expect("row");
    assert_eq!(row.avatar, "", "nothing hostile was stored");

    // What is stored is the URL as a parser writes it.
    let reply = app
        .post(
            "auth/profile",
            &json!({ "avatar": " HTTPS://Thirdwx.QLOGO.cn/mmopen/头像/132 " }),
            Some(&token),
        )
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let stored = "https://thirdwx.qlogo.cn/mmopen/%E5%A4%B4%E5%83%8F/132";
    assert_eq!(reply.body["data"]["avatarUrl"], stored);
    let row = app
        .user_by_openid(&app.fake.openid_for("oscar"))
        .expect("row");
    assert_eq!(row.avatar, stored);
}

#[actix_web::test]
async fn invisible_or_reordering_nicknames_are_402_everywhere_a_nickname_is_set() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("erin").await;
    for (nickname, says) in [
        ("\u{200B}\u{200B}\u{200B}\u{200B}", "visible characters"),
        ("\u{200D}", "visible characters"),
        ("\u{3164}", "visible characters"),
        ("abc\u{202E}gnp.exe", "U+202E"),
        ("\u{200F}admin", "U+200F"),
        ("\u{2066}x\u{2069}", "U+2066"),
        ("\u{FEFF}erin", "U+FEFF"),
        ("erin\u{FDD0}", "U+FDD0"),
    ] {
        let reply = app
            .post(
                "auth/profile",
                &json!({ "nickname": nickname }),
                Some(&token),
            )
            .await;
        assert_eq!(reply.errno(), 402, "{nickname:?}: {}", reply.raw);
        let reason = reply.body["data"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("nickName") && reason.contains(says),
            "{nickname:?}: {reason}"
        );

        // The login's userInfo follows the same rule, and refuses before any account exists.
        let code = app.code_for("frank").code;
        let login = app
            .post(
                "auth/login_by_weixin",
                &json!({ "code": code, "userInfo": { "nickName": nickname } }),
                None,
            )
            .await;
        assert_eq!(login.errno(), 402, "{nickname:?}: {}", login.raw);
    }
    assert!(app.user_by_openid(&app.fake.openid_for("frank")).is_none());
    let row = app
        .user_by_openid(&app.fake.openid_for("erin"))
        .expect("row");
    assert_eq!(row.nickname, "微信用户", "nothing refused was stored");

    let family = "👨\u{200D}👩\u{200D}👧";
    let reply = app
        .post("auth/profile", &json!({ "nickname": family }), Some(&token))
        .await;
    assert_eq!(reply.errno(), 0, "{}", reply.raw);
    let row = app
        .user_by_openid(&app.fake.openid_for("erin"))
        .expect("row");
    assert_eq!(row.nickname, family, "an emoji sequence keeps its joiners");
}
