//! `GET /openapi.json` and the page at `/docs` that renders it.
//!
//! The schemas come from the request and response structs themselves (`utoipa::ToSchema`), so a
//! field added to an answer is in the document with it; the operations, with their errnos, come
//! from the router's own table (`super::operations`), the errnos' messages from `error::CATALOGUE`.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::Operation;
use crate::error::{
    BAD_ARGUMENT, BAD_ARGUMENT_VALUE, BUSY, BusyData, CONTENT_REFUSED, ErrnoSpec, Reason,
    RefusedField, UNLOGIN, UnloginReason,
};

/// The name of the token's security scheme in the document.
const TOKEN_SCHEME: &str = "token";

/// A query parameter of an operation.
pub(crate) struct QueryParam {
    pub(crate) name: &'static str,
    pub(crate) required: bool,
    pub(crate) schema: Value,
    pub(crate) description: &'static str,
}

/// Registers a schema and answers how an operation refers to it (`Schemas::of::<T>`).
pub(crate) type SchemaOf = fn(&mut Schemas) -> Value;

/// Collects the component schemas the operations refer to.
#[derive(Default)]
pub(crate) struct Schemas(BTreeMap<String, Value>);

impl Schemas {
    /// A `$ref` to `T`'s schema, registering it and the schemas it refers to.
    pub(crate) fn of<T: ToSchema>(&mut self) -> Value {
        let name = T::name().into_owned();
        let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
        self.0.insert(name.clone(), schema);
        self.deps::<T>();
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// An array of `T`.
    pub(crate) fn array_of<T: ToSchema>(&mut self) -> Value {
        json!({ "type": "array", "items": self.of::<T>() })
    }

    /// `T`'s schema written out in place (for generic wrappers such as `Page<T>`).
    pub(crate) fn inline<T: ToSchema>(&mut self) -> Value {
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

fn errno_schema(errnos: &[ErrnoSpec]) -> Value {
    let numbers: Vec<i32> = errnos.iter().map(|spec| spec.errno).collect();
    let meanings: Vec<String> = errnos
        .iter()
        .map(|spec| format!("{} {}", spec.errno, spec.errmsg))
        .collect();
    json!({ "type": "integer", "enum": numbers, "description": meanings.join("\n") })
}
/// The answer's envelope: errno 0 with the success `data`, or one of the operation's errnos with
/// its error `data` (`reason` for 401/402, `retryAfterMs` for busy, otherwise null).
fn envelope(op: &Operation, data: Option<Value>) -> Value {
    let success = json!({
        "title": "success",
        "type": "object",
        "required": ["errno", "errmsg", "data"],
        "properties": {
            "errno": { "type": "integer", "enum": [0] },
            "errmsg": { "type": "string" },
            "data": data.unwrap_or(json!({ "type": "null" })),
        },
    });
    let mut variants = vec![success];
    let error = |title: &str, errnos: &[ErrnoSpec], data: Value| {
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
    let bad_argument: Vec<ErrnoSpec> = op
        .errnos
        .iter()
        .copied()
        .filter(|spec| [BAD_ARGUMENT, BAD_ARGUMENT_VALUE].contains(spec))
        .collect();
    if !bad_argument.is_empty() {
        variants.push(error(
            "bad argument",
            &bad_argument,
            json!({ "$ref": "#/components/schemas/Reason" }),
        ));
    }
    if op.errnos.contains(&BUSY) {
        variants.push(error(
            "busy",
            &[BUSY],
            json!({ "$ref": "#/components/schemas/BusyData" }),
        ));
    }
    if op.errnos.contains(&CONTENT_REFUSED) {
        variants.push(error(
            "content refused",
            &[CONTENT_REFUSED],
            json!({ "$ref": "#/components/schemas/RefusedField" }),
        ));
    }
    if op.errnos.contains(&UNLOGIN) {
        variants.push(error(
            "log in again",
            &[UNLOGIN],
            json!({ "$ref": "#/components/schemas/UnloginData" }),
        ));
    }
    let with_data = [
        BAD_ARGUMENT,
        BAD_ARGUMENT_VALUE,
        BUSY,
        CONTENT_REFUSED,
        UNLOGIN,
    ];
    let plain: Vec<ErrnoSpec> = op
        .errnos
        .iter()
        .copied()
        .filter(|spec| !with_data.contains(spec))
        .collect();
    if !plain.is_empty() {
        variants.push(error("error", &plain, json!({ "type": "null" })));
    }
    json!({ "oneOf": variants })
}

fn operation_json(op: &Operation, schemas: &mut Schemas) -> Value {
    let data = op.data.map(|of| of(schemas));
    let mut o = json!({
        "operationId": op.path.trim_start_matches('/').replace('/', "_"),
        "summary": op.summary,
        "tags": [op.path.trim_start_matches('/').split('/').next().unwrap_or_default()],
        "responses": {
            "200": {
                "description": "The envelope, always HTTP 200: errno 0 and the data, or an errno",
                "content": { "application/json": { "schema": envelope(op, data) } },
            },
        },
    });
    if op.auth {
        o["security"] = json!([{ TOKEN_SCHEME: [] }]);
    } else {
        o["security"] = json!([]);
    }
    let query = (op.query)();
    if !query.is_empty() {
        o["parameters"] = query
            .into_iter()
            .map(|param| {
                json!({
                    "name": param.name,
                    "in": "query",
                    "required": param.required,
                    "schema": param.schema,
                    "description": param.description,
                })
            })
            .collect();
    }
    if let Some(body) = op.body.map(|of| of(schemas)) {
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
    let mut paths = serde_json::Map::new();
    for op in super::operations() {
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.method.as_str().to_ascii_lowercase()] = operation_json(&op, &mut schemas);
    }
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
    use crate::error::CATALOGUE;
    use std::collections::BTreeSet;

    #[test]
    fn the_document_describes_every_operation_once() {
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
        let operations = super::super::operations();
        let declared: BTreeSet<(String, String)> = operations
            .iter()
            .map(|op| (op.path.to_string(), op.method.to_string()))
            .collect();
        assert_eq!(
            declared.len(),
            operations.len(),
            "an operation declared twice"
        );
        assert_eq!(documented, declared);
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
        for op in super::super::operations() {
            for spec in op.errnos {
                assert!(
                    CATALOGUE.contains(spec),
                    "{}: errno {} is not catalogued",
                    op.path,
                    spec.errno
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
