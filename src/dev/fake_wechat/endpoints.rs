//! WeChat's server side as the fake plays it: credentials, access tokens, the code exchange, phone
//! numbers and login-state signatures. Each answers the JSON body WeChat would send; `http.rs`
//! puts it on the wire.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{ACCESS_TOKEN_TTL, CODE_TTL, FakeWeChat, State, unix_now, wx_error};
use crate::wechat::{crypto, errcode};

/// A replaced token keeps working this long (WeChat's overlap for `cgi-bin/token`).
const TOKEN_OVERLAP: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
pub(super) struct Code2SessionQuery {
    appid: Option<String>,
    secret: Option<String>,
    js_code: Option<String>,
    grant_type: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct StableTokenRequest {
    appid: Option<String>,
    secret: Option<String>,
    force_refresh: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct PhoneRequest {
    code: Option<String>,
    openid: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SessionQuery {
    access_token: Option<String>,
    openid: Option<String>,
    signature: Option<String>,
    sig_method: Option<String>,
}

impl FakeWeChat {
    /// The app these credentials are, or WeChat's error for them.
    fn check_credentials(
        &self,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<String, serde_json::Value> {
        let (Some(appid), Some(secret)) = (appid, secret) else {
            return Err(match appid {
                None => wx_error(errcode::MISSING_APPID, "appid missing"),
                Some(_) => wx_error(errcode::MISSING_SECRET, "appsecret missing"),
            });
        };
        let st = self.state();
        let Some(app) = st.apps.iter().find(|app| app.appid == appid) else {
            return Err(wx_error(errcode::INVALID_APPID, "invalid appid"));
        };
        if app.secret != secret {
            return Err(wx_error(errcode::INVALID_SECRET, "invalid appsecret"));
        }
        Ok(app.appid.clone())
    }

    fn new_access_token(st: &mut State, appid: &str) -> String {
        let token = format!("ACCESS_{}", crate::random::token_hex(24));
        st.access_tokens.insert(
            token.clone(),
            (appid.to_string(), SystemTime::now() + ACCESS_TOKEN_TTL),
        );
        token
    }

    fn token_reply(st: &State, token: &str) -> serde_json::Value {
        let left = st
            .access_tokens
            .get(token)
            .and_then(|(_, until)| until.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        serde_json::json!({ "access_token": token, "expires_in": left.as_secs() })
    }

    /// `cgi-bin/token`: a new token each time; the app's previous ones keep working five
    /// minutes.
    pub(super) fn plain_token(
        &self,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> serde_json::Value {
        let appid = match self.check_credentials(appid, secret) {
            Ok(appid) => appid,
            Err(err) => return err,
        };
        let mut st = self.state();
        let soon = SystemTime::now() + TOKEN_OVERLAP;
        for (_, until) in st.access_tokens.values_mut().filter(|(a, _)| *a == appid) {
            *until = (*until).min(soon);
        }
        let token = Self::new_access_token(&mut st, &appid);
        Self::token_reply(&st, &token)
    }

    /// `cgi-bin/stable_token`: the same token until five minutes before it expires.
    pub(super) fn stable_token(&self, req: &StableTokenRequest) -> serde_json::Value {
        let appid = match self.check_credentials(req.appid.as_deref(), req.secret.as_deref()) {
            Ok(appid) => appid,
            Err(err) => return err,
        };
        let mut st = self.state();
        let current = st.stable_tokens.get(&appid).cloned().filter(|t| {
            st.access_tokens
                .get(t)
                .is_some_and(|(_, until)| *until > SystemTime::now() + TOKEN_OVERLAP)
        });
        let token = match current {
            Some(t) if !req.force_refresh.unwrap_or(false) => t,
            _ => {
                if let Some(old) = st.stable_tokens.remove(&appid) {
                    st.access_tokens.remove(&old);
                }
                let t = Self::new_access_token(&mut st, &appid);
                st.stable_tokens.insert(appid, t.clone());
                t
            }
        };
        Self::token_reply(&st, &token)
    }

    /// Invalidates every access token at once, as a `force_refresh` elsewhere would.
    pub fn invalidate_access_tokens(&self) {
        let mut st = self.state();
        st.access_tokens.clear();
        st.stable_tokens.clear();
    }

    /// The app whose token it is, else WeChat's error for it.
    pub(super) fn check_access_token(
        &self,
        token: Option<&str>,
    ) -> Result<String, serde_json::Value> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(wx_error(
                errcode::ACCESS_TOKEN_MISSING,
                "access_token missing",
            ));
        };
        match self.state().access_tokens.get(token) {
            None => Err(wx_error(
                errcode::INVALID_CREDENTIAL,
                "invalid credential, access_token is invalid or not latest",
            )),
            Some((_, until)) if *until <= SystemTime::now() => Err(wx_error(
                errcode::ACCESS_TOKEN_EXPIRED,
                "access_token expired",
            )),
            Some((appid, _)) => Ok(appid.clone()),
        }
    }

    /// `wxa/business/getuserphonenumber`: a phone code, once, for the user it was minted for.
    pub(super) fn phone_number(
        &self,
        token: Option<&str>,
        req: &PhoneRequest,
    ) -> serde_json::Value {
        let appid = match self.check_access_token(token) {
            Ok(appid) => appid,
            Err(err) => return err,
        };
        let mut st = self.state();
        let Some(issued) = req
            .code
            .as_deref()
            .and_then(|c| st.phone_codes.get_mut(c))
            .filter(|issued| issued.appid == appid)
        else {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        };
        let expired = SystemTime::now()
            .duration_since(issued.issued_at)
            .unwrap_or_default()
            > CODE_TTL;
        let wrong_user = req.openid.as_deref().is_some_and(|o| o != issued.openid);
        if expired || wrong_user {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        }
        if issued.used {
            return wx_error(errcode::CODE_BEEN_USED, "code been used");
        }
        issued.used = true;
        let phone = issued.phone.clone();
        serde_json::json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone,
                "purePhoneNumber": phone,
                "countryCode": "86",
                "watermark": { "timestamp": unix_now(), "appid": appid },
            }
        })
    }

    /// Checks the login-state signature against the user's current key.
    pub(super) fn signature_ok(&self, q: &SessionQuery) -> Result<String, serde_json::Value> {
        self.check_access_token(q.access_token.as_deref())?;
        if q.sig_method.as_deref() != Some("hmac_sha256") {
            return Err(wx_error(87008, "invalid sig_method"));
        }
        let openid = q.openid.clone().unwrap_or_default();
        let key = self.session_key_of(&openid);
        let expected = key.as_deref().map(|k| crypto::login_state_signature(k, ""));
        match (expected, q.signature.as_deref()) {
            (Some(e), Some(given)) if e == given => Ok(openid),
            _ => Err(wx_error(errcode::INVALID_SIGNATURE, "invalid signature")),
        }
    }

    /// `sns/jscode2session`: a login code, once, within five minutes of its minting.
    pub(super) fn code2session(&self, q: &Code2SessionQuery) -> serde_json::Value {
        let (Some(appid), Some(secret), Some(js_code)) = (&q.appid, &q.secret, &q.js_code) else {
            let code = if q.appid.is_none() {
                errcode::MISSING_APPID
            } else if q.secret.is_none() {
                errcode::MISSING_SECRET
            } else {
                errcode::MISSING_CODE
            };
            return wx_error(code, "missing parameter");
        };
        let appid = match self.check_credentials(Some(appid), Some(secret)) {
            Ok(appid) => appid,
            Err(err) => return err,
        };
        if q.grant_type.as_deref() != Some("authorization_code") {
            return wx_error(40002, "invalid grant_type");
        }
        let mut st = self.state();
        // Another app's code is as unknown to this app as a made-up one.
        let Some(issued) = st
            .codes
            .get_mut(js_code)
            .filter(|issued| issued.appid == appid)
        else {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        };
        if issued.used {
            return wx_error(errcode::CODE_BEEN_USED, "code been used");
        }
        let age = SystemTime::now()
            .duration_since(issued.issued_at)
            .unwrap_or_default();
        if age > CODE_TTL {
            return wx_error(errcode::INVALID_CODE, "invalid code");
        }
        issued.used = true;
        let openid = issued.openid.clone();
        let unionid = issued.unionid.clone();
        let session_key = issued.session_key.clone();
        let mut body = serde_json::json!({ "openid": openid, "session_key": session_key });
        if let Some(u) = unionid {
            body["unionid"] = serde_json::Value::String(u);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(fake: &FakeWeChat, code: &str) -> Code2SessionQuery {
        Code2SessionQuery {
            appid: Some(fake.appid.clone()),
            secret: Some("secret".into()),
            js_code: Some(code.to_string()),
            grant_type: Some("authorization_code".into()),
        }
    }

    #[test]
    fn codes_are_single_use_and_keys_fresh() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let a = fake.mint_code("alice");
        let first = fake.code2session(&query(&fake, &a.code));
        assert_eq!(first["openid"], a.openid);
        assert_eq!(fake.code2session(&query(&fake, &a.code))["errcode"], 40163);
        let b = fake.mint_code("alice");
        let second = fake.code2session(&query(&fake, &b.code));
        assert_ne!(first["session_key"], second["session_key"]);
        assert_eq!(
            fake.session_key_of(&a.openid).as_deref(),
            second["session_key"].as_str()
        );
    }

    #[test]
    fn bulk_codes_cycle_over_the_users_and_each_works_once() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let codes = fake.mint_codes("load-", 5, 2);
        assert_eq!(codes.len(), 5);
        let openids: Vec<_> = codes
            .iter()
            .map(|c| fake.code2session(&query(&fake, c))["openid"].clone())
            .collect();
        assert_eq!(openids, ["load-0", "load-1", "load-0", "load-1", "load-0"]);
        assert_eq!(
            fake.code2session(&query(&fake, &codes[0]))["errcode"],
            40163
        );
    }

    #[test]
    fn expired_unknown_and_wrong_credentials() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let old = fake.mint_code_for("o1", None, CODE_TTL + Duration::from_secs(1));
        assert_eq!(
            fake.code2session(&query(&fake, &old.code))["errcode"],
            40029
        );
        assert_eq!(fake.code2session(&query(&fake, "nope"))["errcode"], 40029);
        let good = fake.mint_code("bob");
        let mut q = query(&fake, &good.code);
        q.secret = Some("wrong".into());
        assert_eq!(fake.code2session(&q)["errcode"], 40125);
        q.appid = Some("wxother".into());
        assert_eq!(fake.code2session(&q)["errcode"], 40013);
        q.appid = None;
        assert_eq!(fake.code2session(&q)["errcode"], 41002);
    }

    #[test]
    fn stable_tokens_stay_until_invalidated_and_plain_tokens_replace_each_other() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let req = StableTokenRequest {
            appid: Some("wxapp".into()),
            secret: Some("secret".into()),
            force_refresh: None,
        };
        let a = fake.stable_token(&req)["access_token"].clone();
        assert_eq!(fake.stable_token(&req)["access_token"], a);
        assert!(fake.check_access_token(a.as_str()).is_ok());
        fake.invalidate_access_tokens();
        assert_eq!(
            fake.check_access_token(a.as_str()).expect_err("refused")["errcode"],
            40001
        );
        assert_ne!(fake.stable_token(&req)["access_token"], a);

        let p1 = fake.plain_token(Some("wxapp"), Some("secret"))["access_token"].clone();
        let p2 = fake.plain_token(Some("wxapp"), Some("secret"))["access_token"].clone();
        assert_ne!(p1, p2);
        assert!(
            fake.check_access_token(p1.as_str()).is_ok(),
            "five minutes of overlap"
        );
        assert_eq!(
            fake.plain_token(Some("wxapp"), Some("bad"))["errcode"],
            40125
        );
    }

    #[test]
    fn phone_codes_are_single_use_and_tied_to_their_user() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let token = fake.plain_token(Some("wxapp"), Some("secret"))["access_token"]
            .as_str()
            .map(str::to_string);
        let code = fake.mint_phone_code("o1", "13800138000");
        let ask = |openid: &str| PhoneRequest {
            code: Some(code.clone()),
            openid: Some(openid.into()),
        };
        assert_eq!(
            fake.phone_number(token.as_deref(), &ask("o2"))["errcode"],
            40029
        );
        assert_eq!(
            fake.phone_number(token.as_deref(), &ask("o1"))["phone_info"]["purePhoneNumber"],
            "13800138000"
        );
        assert_eq!(
            fake.phone_number(token.as_deref(), &ask("o1"))["errcode"],
            40163
        );
        assert_eq!(
            fake.phone_number(Some("stale"), &ask("o1"))["errcode"],
            40001
        );
        assert_eq!(fake.phone_number(None, &ask("o1"))["errcode"], 41001);
    }

    #[test]
    fn encrypted_phones_decrypt_with_the_current_key_only() {
        let fake = FakeWeChat::new("wxapp", "secret");
        let login = fake.mint_code("amy");
        fake.code2session(&query(&fake, &login.code));
        let (data, iv) = fake
            .encrypted_phone(&login.openid, "13900139000", "wxapp")
            .expect("a key exists");
        let key = fake.session_key_of(&login.openid).expect("key");
        let plain = crypto::decrypt_open_data(&key, &iv, &data).expect("decrypts");
        let json: serde_json::Value = serde_json::from_slice(&plain).expect("json");
        assert_eq!(json["watermark"]["appid"], "wxapp");
        let new_key = fake.reset_session_key(&login.openid);
        assert_ne!(new_key, key);
    }

    #[test]
    fn codes_and_phone_codes_belong_to_their_app() {
        let fake = FakeWeChat::new("wxapp", "secret");
        fake.add_app("wxshop", "shop-secret");
        fake.bind_open_platform("wxshop");
        let shop_code = fake.mint_code_in("wxshop", "alice");
        assert_eq!(
            shop_code.unionid.as_deref(),
            Some(fake.unionid_for("alice").as_str())
        );
        assert_eq!(fake.mint_code("alice").unionid, None, "wxapp is not bound");

        // The shop's code, exchanged with the first app's credentials: unknown there.
        let reply = fake.code2session(&query(&fake, &shop_code.code));
        assert_eq!(reply["errcode"], errcode::INVALID_CODE);
        let mut shop = query(&fake, &shop_code.code);
        shop.appid = Some("wxshop".into());
        shop.secret = Some("secret".into());
        assert_eq!(fake.code2session(&shop)["errcode"], errcode::INVALID_SECRET);
        shop.secret = Some("shop-secret".into());
        let reply = fake.code2session(&shop);
        assert_eq!(reply["openid"], fake.openid_in("wxshop", "alice"));
        assert_eq!(reply["unionid"], fake.unionid_for("alice"));

        // A phone code works only with its app's access token.
        let openid = fake.openid_in("wxshop", "alice");
        let phone_code = fake.mint_phone_code_in("wxshop", &openid, "13800000000");
        let app_token = fake.plain_token(Some("wxapp"), Some("secret"))["access_token"].clone();
        let shop_token =
            fake.plain_token(Some("wxshop"), Some("shop-secret"))["access_token"].clone();
        let ask = |token: &serde_json::Value| {
            fake.phone_number(
                token.as_str(),
                &PhoneRequest {
                    code: Some(phone_code.clone()),
                    openid: Some(openid.clone()),
                },
            )
        };
        assert_eq!(ask(&app_token)["errcode"], errcode::INVALID_CODE);
        let reply = ask(&shop_token);
        assert_eq!(reply["phone_info"]["watermark"]["appid"], "wxshop");
    }
}
