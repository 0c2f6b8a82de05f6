//! `GET /openapi.json` and the page at `/docs` that renders it.
//!
//! The schemas come from the request and response structs themselves (`utoipa::ToSchema`), so a
//! field added to an answer is in the document with it; the operations come from the table below,
//! which a test holds equal to the router's (`super::wx_routes`). The errnos of each operation are
//! listed there too; their messages come from `error::CATALOGUE`.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::account::{DeactivateAnswer, ExportView};
use super::auth::{
    LinkAnswer, LinkWeixinRequest, LoginAnswer, LoginRequest, RefreshAnswer, WeComCodeRequest,
};
use super::home::{HomeIndex, SwiperImageView};
use super::meeting::{
    MAX_LIMIT, MAX_PAGE, MeetingIdRequest, MeetingView, Membership, Page, PublishRequest,
    SubscribeRequest, Subscription,
};
use super::phone::{BindPhoneRequest, BoundPhone};
use super::profile::{InfoView, ProfileRequest, UserInfoView};
use super::user::UserIndex;
use crate::error::{
    BUSY_ERRNO, BusyData, CATALOGUE, CONTENT_REFUSED, Reason, RefusedField, UNLOGIN, UnloginReason,
};

/// The name of the token's security scheme in the document.
const TOKEN_SCHEME: &str = "token";

/// A query parameter: name, required, schema, description.
type Query = (&'static str, bool, Value, &'static str);

/// One operation of the mini-program API.
struct Operation {
    path: &'static str,
    method: Method,
    summary: &'static str,
    /// Needs the token header.
    auth: bool,
    query: Vec<Query>,
    body: Option<Value>,
    /// The success `data`; `None` for `data: null`.
    data: Option<Value>,
    errnos: &'static [i32],
}

/// Collects the component schemas the operations refer to.
#[derive(Default)]
struct Schemas(BTreeMap<String, Value>);

impl Schemas {
    /// A `$ref` to `T`'s schema, registering it and the schemas it refers to.
    fn of<T: ToSchema>(&mut self) -> Value {
        let name = T::name().into_owned();
        let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
        self.0.insert(name.clone(), schema);
        self.deps::<T>();
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// `T`'s schema written out in place (for generic wrappers such as `Page<T>`).
    fn inline<T: ToSchema>(&mut self) -> Value {
        self.deps::<T>();
        serde_json::to_value(T::schema()).unwrap_or(Value::Null)
    }

    fn deps<T: ToSchema>(&mut self) {
        let mut deps = Vec::new();
        T::schemas(&mut deps);
        for (name, schema) in deps {
            self.0
                .insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
        }
    }
}

const LOGIN_ERRNOS: &[i32] = &[
    401, 402, 700, 710, 711, 712, 713, 714, 715, 716, 719, 720, BUSY_ERRNO, 502,
];
const BIND_PHONE_ERRNOS: &[i32] = &[
    401, 402, 501, 705, 712, 713, 714, 715, 716, 717, 718, 720, BUSY_ERRNO, 502,
];
const LINK_ERRNOS: &[i32] = &[
    401, 402, 501, 710, 711, 712, 713, 714, 715, 716, 719, BUSY_ERRNO, 502,
];
/// WeCom's refusals reach fewer errnos than WeChat's: see `wechat::wecom::wecom_error`.
const WECOM_LOGIN_ERRNOS: &[i32] = &[401, 402, 700, 710, 714, 715, 716, 720, BUSY_ERRNO, 502];
const WECOM_LINK_ERRNOS: &[i32] = &[401, 402, 501, 710, 714, 715, 716, BUSY_ERRNO, 502];
/// A call with a token and a JSON body.
const AUTH_BODY_ERRNOS: &[i32] = &[401, 402, 501, BUSY_ERRNO, 502];
/// A call with a token and a JSON body whose text goes through WeChat's content check: refused
/// as risky (730), or the check could not be made (714/715/716).
const CHECKED_BODY_ERRNOS: &[i32] = &[401, 402, 501, 714, 715, 716, 730, BUSY_ERRNO, 502];
/// A call with a token and nothing else to check.
const AUTH_ERRNOS: &[i32] = &[501, BUSY_ERRNO, 502];
/// A call with arguments but no token.
const ARGS_ERRNOS: &[i32] = &[401, 402, BUSY_ERRNO, 502];
/// A call whose arguments are all optional: only a bad value is refused.
const OPTIONAL_ARGS_ERRNOS: &[i32] = &[402, BUSY_ERRNO, 502];
/// A call without arguments or token.
const PLAIN_ERRNOS: &[i32] = &[BUSY_ERRNO, 502];

fn operations(s: &mut Schemas) -> Vec<Operation> {
    let op = |path, method, summary, auth, errnos| Operation {
        path,
        method,
        summary,
        auth,
        query: Vec::new(),
        body: None,
        data: None,
        errnos,
    };
    vec![
        Operation {
            body: Some(s.of::<LoginRequest>()),
            data: Some(s.of::<LoginAnswer>()),
            ..op(
                "/auth/login_by_weixin",
                Method::POST,
                "Log in with the code from wx.login(); answers the token",
                false,
                LOGIN_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<WeComCodeRequest>()),
            data: Some(s.of::<LoginAnswer>()),
            ..op(
                "/auth/login_by_wecom",
                Method::POST,
                "Inside WeCom: log in as staff with the code from wx.qy.login(); answers as login_by_weixin",
                false,
                WECOM_LOGIN_ERRNOS,
            )
        },
        op(
            "/auth/logout",
            Method::POST,
            "End this token's session",
            true,
            AUTH_ERRNOS,
        ),
        op(
            "/auth/logout_all",
            Method::POST,
            "End every session of the user",
            true,
            AUTH_ERRNOS,
        ),
        Operation {
            body: Some(s.of::<LinkWeixinRequest>()),
            data: Some(s.of::<LinkAnswer>()),
            ..op(
                "/auth/link_weixin",
                Method::POST,
                "Attach the person's identity in another mini-program to this account (merging the account that had it)",
                true,
                LINK_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<WeComCodeRequest>()),
            data: Some(s.of::<LinkAnswer>()),
            ..op(
                "/auth/link_wecom",
                Method::POST,
                "Attach the person's WeCom identity (code from wx.qy.login()) to this account (merging the account that had it)",
                true,
                WECOM_LINK_ERRNOS,
            )
        },
        Operation {
            data: Some(s.of::<RefreshAnswer>()),
            ..op(
                "/auth/refresh",
                Method::POST,
                "A new token for the same session; the old one stops working",
                true,
                AUTH_ERRNOS,
            )
        },
        Operation {
            data: Some(s.of::<DeactivateAnswer>()),
            ..op(
                "/auth/deactivate",
                Method::POST,
                "Delete the account after the grace period; ends every session",
                true,
                AUTH_ERRNOS,
            )
        },
        Operation {
            data: Some(s.of::<ExportView>()),
            ..op(
                "/auth/export",
                Method::GET,
                "Everything stored about the user",
                true,
                AUTH_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<BindPhoneRequest>()),
            data: Some(s.of::<BoundPhone>()),
            ..op(
                "/auth/bindPhone",
                Method::POST,
                "Bind the phone number from the getPhoneNumber button",
                true,
                BIND_PHONE_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<ProfileRequest>()),
            data: Some(s.of::<UserInfoView>()),
            ..op(
                "/auth/profile",
                Method::POST,
                "Change nickname, avatar or gender (at least one); a new nickname goes through \
                 WeChat's content check",
                true,
                CHECKED_BODY_ERRNOS,
            )
        },
        Operation {
            data: Some(s.of::<InfoView>()),
            ..op(
                "/auth/info",
                Method::GET,
                "The user's profile",
                true,
                AUTH_ERRNOS,
            )
        },
        Operation {
            data: Some(s.of::<UserIndex>()),
            ..op(
                "/user/index",
                Method::GET,
                "How many meetings the user published and joined",
                true,
                AUTH_ERRNOS,
            )
        },
        Operation {
            data: Some(s.of::<HomeIndex>()),
            ..op(
                "/home/index",
                Method::GET,
                "Home page: swiper images and upcoming meetings",
                false,
                PLAIN_ERRNOS,
            )
        },
        Operation {
            data: Some(json!({ "type": "array", "items": s.of::<SwiperImageView>() })),
            ..op(
                "/swiperImgs",
                Method::GET,
                "Swiper images",
                false,
                PLAIN_ERRNOS,
            )
        },
        Operation {
            query: vec![
                (
                    "page",
                    false,
                    json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1 }),
                    "Page number, from 1",
                ),
                (
                    "limit",
                    false,
                    json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                            "default": super::meeting::DEFAULT_LIMIT }),
                    "Meetings per page",
                ),
                (
                    "state",
                    false,
                    json!({ "type": "integer", "enum": [1, 2] }),
                    "1 published, 2 cancelled; absent or empty: any",
                ),
            ],
            data: Some(s.inline::<Page<MeetingView>>()),
            ..op(
                "/meeting/list",
                Method::GET,
                "Meetings, newest first, a page at a time",
                false,
                OPTIONAL_ARGS_ERRNOS,
            )
        },
        Operation {
            query: vec![(
                "id",
                true,
                json!({ "type": "integer", "format": "int64", "minimum": 1 }),
                "The meeting's id",
            )],
            data: Some(s.of::<MeetingView>()),
            ..op(
                "/meeting/detail",
                Method::GET,
                "One meeting (one pending review or rejected only for its publisher, with the token)",
                false,
                ARGS_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<PublishRequest>()),
            data: Some(s.of::<MeetingView>()),
            ..op(
                "/meeting/publish",
                Method::POST,
                "Publish a meeting; title, content and location go through WeChat's content \
                 check (a text WeChat wants reviewed is stored pending an admin's review)",
                true,
                CHECKED_BODY_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<MeetingIdRequest>()),
            data: Some(s.of::<Membership>()),
            ..op(
                "/meeting/join",
                Method::POST,
                "Join a meeting that has not ended",
                true,
                AUTH_BODY_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<MeetingIdRequest>()),
            data: Some(s.of::<Membership>()),
            ..op(
                "/meeting/leave",
                Method::POST,
                "Leave a meeting",
                true,
                AUTH_BODY_ERRNOS,
            )
        },
        Operation {
            body: Some(s.of::<SubscribeRequest>()),
            data: Some(s.of::<Subscription>()),
            ..op(
                "/meeting/subscribe",
                Method::POST,
                "Report wx.requestSubscribeMessage's answer for the reminder template, for a \
                 joined meeting: a consent gives one reminder before the start (402 with \
                 data.reason when the meeting is not joined)",
                true,
                AUTH_BODY_ERRNOS,
            )
        },
    ]
}

/// What an errno means, for the document: its `errmsg`.
fn errno_meaning(errno: i32) -> &'static str {
    CATALOGUE
        .iter()
        .find(|spec| spec.errno == errno)
        .map_or("", |spec| spec.errmsg)
}

fn errno_schema(errnos: &[i32]) -> Value {
    let meanings: Vec<String> = errnos
        .iter()
        .map(|n| format!("{n} {}", errno_meaning(*n)))
        .collect();
    json!({ "type": "integer", "enum": errnos, "description": meanings.join("\n") })
}

/// The answer's envelope: errno 0 with the success `data`, or one of the operation's errnos with
/// its error `data` (`reason` for 401/402, `retryAfterMs` for busy, otherwise null).
fn envelope(op: &Operation) -> Value {
    let success = json!({
        "title": "success",
        "type": "object",
        "required": ["errno", "errmsg", "data"],
        "properties": {
            "errno": { "type": "integer", "enum": [0] },
            "errmsg": { "type": "string" },
            "data": op.data.clone().unwrap_or(json!({ "type": "null" })),
        },
    });
    let mut variants = vec![success];
    let error = |title: &str, errnos: &[i32], data: Value| {
        json!({
            "title": title,
            "type": "object",
            "required": ["errno", "errmsg", "data"],
            "properties": {
                "errno": errno_schema(errnos),
                "errmsg": { "type": "string" },
                "data": data,
            },
        })
    };
    let bad_argument: Vec<i32> = op
        .errnos
        .iter()
        .copied()
        .filter(|n| matches!(n, 401 | 402))
        .collect();
    if !bad_argument.is_empty() {
        variants.push(error(
            "bad argument",
            &bad_argument,
            json!({ "$ref": "#/components/schemas/Reason" }),
        ));
    }
    if op.errnos.contains(&BUSY_ERRNO) {
        variants.push(error(
            "busy",
            &[BUSY_ERRNO],
            json!({ "$ref": "#/components/schemas/BusyData" }),
        ));
    }
    if op.errnos.contains(&CONTENT_REFUSED.errno) {
        variants.push(error(
            "content refused",
            &[CONTENT_REFUSED.errno],
            json!({ "$ref": "#/components/schemas/RefusedField" }),
        ));
    }
    if op.errnos.contains(&UNLOGIN.errno) {
        variants.push(error(
            "log in again",
            &[UNLOGIN.errno],
            json!({ "$ref": "#/components/schemas/UnloginData" }),
        ));
    }
    let plain: Vec<i32> = op
        .errnos
        .iter()
        .copied()
        .filter(|n| {
            !matches!(*n, 401 | 402 | BUSY_ERRNO)
                && *n != CONTENT_REFUSED.errno
                && *n != UNLOGIN.errno
        })
        .collect();
    if !plain.is_empty() {
        variants.push(error("error", &plain, json!({ "type": "null" })));
    }
    json!({ "oneOf": variants })
}

fn operation_json(op: &Operation) -> Value {
    let mut o = json!({
        "operationId": op.path.trim_start_matches('/').replace('/', "_"),
        "summary": op.summary,
        "tags": [op.path.trim_start_matches('/').split('/').next().unwrap_or_default()],
        "responses": {
            "200": {
                "description": "The envelope, always HTTP 200: errno 0 and the data, or an errno",
                "content": { "application/json": { "schema": envelope(op) } },
            },
        },
    });
    if op.auth {
        o["security"] = json!([{ TOKEN_SCHEME: [] }]);
    } else {
        o["security"] = json!([]);
    }
    if !op.query.is_empty() {
        o["parameters"] = op
            .query
            .iter()
            .map(|(name, required, schema, description)| {
                json!({
                    "name": name,
                    "in": "query",
                    "required": required,
                    "schema": schema,
                    "description": description,
                })
            })
            .collect();
    }
    if let Some(body) = &op.body {
        o["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": body } },
        });
    }
    o
}

/// The document for an API mounted at `api_root` (`{CONTEXT_PATH}/wx`) whose token travels in
/// `token_header`.
pub fn document(api_root: &str, token_header: &str) -> Value {
    let mut schemas = Schemas::default();
    let ops = operations(&mut schemas);
    schemas.of::<Reason>();
    schemas.of::<BusyData>();
    schemas.of::<RefusedField>();
    let reasons: Vec<&str> = UnloginReason::ALL.iter().map(|r| r.as_str()).collect();
    schemas.0.insert(
        "UnloginData".to_string(),
        json!({
            "type": "object",
            "required": ["reason"],
            "properties": {
                "reason": {
                    "type": "string",
                    "enum": reasons,
                    "description": "Why the client must log in again (README: Why a 501)",
                },
            },
        }),
    );
    let mut paths = serde_json::Map::new();
    for op in &ops {
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.method.as_str().to_ascii_lowercase()] = operation_json(op);
    }
    let server = if api_root.is_empty() { "/" } else { api_root };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wxauth mini-program API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "WeChat Mini Program login and the demo API. Every answer is HTTP 200 \
                with the envelope {errno, errmsg, data}: errno 0 is success, anything else an error \
                whose data is null, {reason} for a bad argument or {retryAfterMs} when busy. \
                errno 501 means log in again, with {reason}: missing, wrong_header, malformed, \
                invalid, expired, revoked, disabled, merged or session_key.",
        },
        "servers": [{ "url": server }],
        "paths": paths,
        "components": {
            "schemas": schemas.0,
            "securitySchemes": {
                TOKEN_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": token_header,
                    "description": "The token from auth/login_by_weixin",
                },
            },
        },
    })
}

/// The docs page and its assets, compiled in so `/docs` works wherever the binary runs.
const DOCS_HTML: &str = include_str!("../../static/docs.html");
const DOCS_JS: &str = include_str!("../../static/docs.js");
const DOCS_CSS: &str = include_str!("../../static/docs.css");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .body(body)
}

/// Mounts `/openapi.json` (the document, serialised once) and `/docs`, with the admin page's
/// strict headers: the page loads only its own files.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, document_json: Arc<str>) {
    cfg.route(
        "/openapi.json",
        web::get().to(move || {
            let body = document_json.to_string();
            async move {
                HttpResponse::Ok()
                    .insert_header((CONTENT_TYPE, "application/json"))
                    .insert_header((CACHE_CONTROL, "no-cache"))
                    .body(body)
            }
        }),
    )
    .service(
        web::scope("/docs")
            .wrap(super::admin::security_headers())
            .route(
                "",
                web::get().to(|| async { asset("text/html; charset=utf-8", DOCS_HTML) }),
            )
            .route(
                "/docs.js",
                web::get().to(|| async { asset("text/javascript; charset=utf-8", DOCS_JS) }),
            )
            .route(
                "/docs.css",
                web::get().to(|| async { asset("text/css; charset=utf-8", DOCS_CSS) }),
            ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_document_describes_exactly_the_routes() {
        let doc = document("/wx", "X-OA-Token");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (path.clone(), method.to_ascii_uppercase()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = super::super::wx_routes()
            .into_iter()
            .map(|(path, method, _)| (path.to_string(), method.to_string()))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document("/wx", "X-OA-Token");
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referenced but missing"
            );
        }
    }

    #[test]
    fn the_token_scheme_follows_the_configured_header() {
        let doc = document("/ctx/wx", "X-Litemall-Token");
        let scheme = &doc["components"]["securitySchemes"][TOKEN_SCHEME];
        assert_eq!(scheme["type"], "apiKey");
        assert_eq!(scheme["in"], "header");
        assert_eq!(scheme["name"], "X-Litemall-Token");
        assert_eq!(doc["servers"][0]["url"], "/ctx/wx");
        let logout = &doc["paths"]["/auth/logout"]["post"];
        assert_eq!(logout["security"], json!([{ TOKEN_SCHEME: [] }]));
        let login = &doc["paths"]["/auth/login_by_weixin"]["post"];
        assert_eq!(login["security"], json!([]));
    }

    #[test]
    fn bounds_come_from_the_request_structs() {
        let doc = document("/wx", "X-OA-Token");
        let publish = &doc["components"]["schemas"]["PublishRequest"]["properties"];
        use super::super::meeting::{
            MAX_CONTENT_CHARS, MAX_COVER_LEN, MAX_LOCATION_CHARS, MAX_TITLE_CHARS,
        };
        use super::super::profile::{MAX_AVATAR_LEN, MAX_NICKNAME_CHARS};
        assert_eq!(publish["title"]["maxLength"], MAX_TITLE_CHARS);
        assert_eq!(publish["location"]["maxLength"], MAX_LOCATION_CHARS);
        assert_eq!(publish["content"]["maxLength"], MAX_CONTENT_CHARS);
        assert_eq!(publish["cover"]["maxLength"], MAX_COVER_LEN);
        let profile = &doc["components"]["schemas"]["ProfileRequest"]["properties"];
        assert_eq!(profile["gender"]["maximum"], 2);
        assert_eq!(profile["nickname"]["maxLength"], MAX_NICKNAME_CHARS);
        assert_eq!(profile["avatar"]["maxLength"], MAX_AVATAR_LEN);
        let required = doc["components"]["schemas"]["PublishRequest"]["required"].clone();
        assert_eq!(
            required,
            json!(["title", "content", "location", "startTime", "endTime"])
        );
        let login = &doc["components"]["schemas"]["LoginProfile"]["properties"];
        assert_eq!(login["nickName"]["maxLength"], MAX_NICKNAME_CHARS);
        assert_eq!(login["avatarUrl"]["maxLength"], MAX_AVATAR_LEN);
    }

    #[test]
    fn every_listed_errno_is_catalogued_and_described_by_its_errmsg() {
        let mut schemas = Schemas::default();
        for op in operations(&mut schemas) {
            for errno in op.errnos {
                let spec = CATALOGUE.iter().find(|s| s.errno == *errno);
                assert!(
                    spec.is_some(),
                    "{}: errno {errno} is not catalogued",
                    op.path
                );
            }
        }
        let login = &document("/wx", "X-OA-Token")["paths"]["/auth/login_by_weixin"]["post"];
        let variants = login["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"]
            .as_array()
            .unwrap();
        let plain = variants.iter().find(|v| v["title"] == "error").unwrap();
        let description = plain["properties"]["errno"]["description"]
            .as_str()
            .unwrap();
        assert!(
            description.contains("710 登录凭证无效或已过期，请重新登录"),
            "{description}"
        );
    }
}
