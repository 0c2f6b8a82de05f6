//! `/openapi.json` and the `/docs` page, as served: outside the context path, following
//! `CONTEXT_PATH` and `TOKEN_HEADER`, and every documented operation answering at its path.

use actix_web::http::header::HeaderName;

use crate::helpers::TestApp;

#[actix_web::test]
async fn the_document_follows_the_context_path_and_the_token_header() {
    let app = TestApp::builder()
        .config(|c| {
            c.http.context_path = "/shop".into();
            c.http.token_header = HeaderName::from_static("x-litemall-token");
        })
        .spawn()
        .await;
    let doc = app.get_abs("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc.body["servers"][0]["url"], "/shop/wx");
    let scheme = &doc.body["components"]["securitySchemes"]["token"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    // Shown as a developer types it, not in the lower case HTTP compares it in.
    assert_eq!(scheme["name"], "X-Litemall-Token");
    let default = TestApp::spawn().await;
    let doc = default.get_abs("/openapi.json").await;
    assert_eq!(
        doc.body["components"]["securitySchemes"]["token"]["name"], "X-OA-Token",
        "TOKEN_HEADER's default as written"
    );
    // Not under the context path.
    assert_eq!(app.get_abs("/shop/wx/openapi.json").await.errno(), 404);
}

/// Every documented GET answers an envelope at its path (not the 404 envelope), and the login
/// answer carries each field the document requires of `LoginAnswer`.
#[actix_web::test]
async fn documented_operations_answer_at_their_paths() {
    let app = TestApp::spawn().await;
    let doc = app.get_abs("/openapi.json").await.body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{} paths", paths.len());
    for (path, item) in paths {
        if item.get("get").is_some() {
            let reply = app.get(path.trim_start_matches('/'), None).await;
            assert_eq!(reply.status, 200, "{path}");
            assert_ne!(reply.errno(), 404, "{path}");
        }
    }

    let login = app.login("alice").await;
    assert_eq!(login.errno(), 0);
    let required = doc["components"]["schemas"]["LoginAnswer"]["required"]
        .as_array()
        .unwrap();
    for field in required {
        let field = field.as_str().unwrap();
        assert!(login.body["data"].get(field).is_some(), "{field} missing");
    }
}

#[actix_web::test]
async fn the_docs_page_and_its_assets_are_served_with_the_admin_csp() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/docs", "text/html; charset=utf-8"),
        ("/docs/docs.js", "text/javascript; charset=utf-8"),
        ("/docs/docs.css", "text/css; charset=utf-8"),
    ] {
        let reply = app.get_abs(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        let csp = reply.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
    }
    let page = app.get_abs("/docs").await.raw;
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "a remote asset"
    );
}
