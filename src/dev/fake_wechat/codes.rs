//! What a phone's WeChat hands the mini-program, minted on demand for the tests: `wx.login()`
//! codes, `getPhoneNumber` codes and open data encrypted or signed with the user's current
//! session_key.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::{FakeWeChat, IssuedCode, PhoneCode, unix_now};
use crate::wechat::crypto;

/// A code minted for a test user, with the openid WeChat will report for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintedCode {
    pub code: String,
    pub openid: String,
    /// What WeChat will report as the unionid, when the code carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

impl FakeWeChat {
    /// What `wx.login()` would hand the named user's phone in the first app.
    pub fn mint_code(&self, user: &str) -> MintedCode {
        let appid = self.appid.clone();
        self.mint_code_in(&appid, user)
    }

    /// What `wx.login()` in app `appid` would hand the named user's phone: with the user's
    /// unionid when the app is bound to the open platform.
    pub fn mint_code_in(&self, appid: &str, user: &str) -> MintedCode {
        let openid = self.openid_in(appid, user);
        let unionid = self.is_bound(appid).then(|| self.unionid_for(user));
        self.mint_app_code(appid, &openid, unionid.as_deref(), Duration::ZERO)
    }

    /// A first-app code for an exact openid (and unionid), issued `age` ago.
    pub fn mint_code_for(&self, openid: &str, unionid: Option<&str>, age: Duration) -> MintedCode {
        let appid = self.appid.clone();
        self.mint_app_code(&appid, openid, unionid, age)
    }

    /// An app's code for an exact openid (and unionid), issued `age` ago.
    pub fn mint_app_code(
        &self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
        age: Duration,
    ) -> MintedCode {
        let code = format!("0{}", crate::random::token_hex(15));
        let issued_at = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let session_key = B64.encode(crate::random::bytes::<16>());
        let mut st = self.state();
        st.session_keys
            .insert(openid.to_string(), session_key.clone());
        st.codes.insert(
            code.clone(),
            IssuedCode {
                appid: appid.to_string(),
                openid: openid.to_string(),
                unionid: unionid.map(str::to_string),
                session_key,
                issued_at,
                used: false,
            },
        );
        MintedCode {
            code,
            openid: openid.to_string(),
            unionid: unionid.map(str::to_string),
        }
    }

    /// `count` codes at once, for load tests: code `i` logs in the user with openid
    /// `{prefix}{i % users}`, so `users` below `count` makes returning users.
    pub(crate) fn mint_codes(&self, prefix: &str, count: usize, users: usize) -> Vec<String> {
        let users = users.max(1);
        let appid = self.appid.clone();
        let now = SystemTime::now();
        let mut st = self.state();
        st.codes.reserve(count);
        (0..count)
            .map(|i| {
                let openid = format!("{prefix}{}", i % users);
                let code = format!("0{}", crate::random::token_hex(15));
                let session_key = B64.encode(crate::random::bytes::<16>());
                st.session_keys.insert(openid.clone(), session_key.clone());
                st.codes.insert(
                    code.clone(),
                    IssuedCode {
                        appid: appid.clone(),
                        openid,
                        unionid: None,
                        session_key,
                        issued_at: now,
                        used: false,
                    },
                );
                code
            })
            .collect()
    }

    /// A code from the first app's `getPhoneNumber` button of the user with this openid.
    pub fn mint_phone_code(&self, openid: &str, phone: &str) -> String {
        let appid = self.appid.clone();
        self.mint_phone_code_in(&appid, openid, phone)
    }

    /// A code from app `appid`'s `getPhoneNumber` button: only that app's access token
    /// exchanges it.
    pub fn mint_phone_code_in(&self, appid: &str, openid: &str, phone: &str) -> String {
        let code = format!("p{}", crate::random::token_hex(15));
        self.state().phone_codes.insert(
            code.clone(),
            PhoneCode {
                appid: appid.to_string(),
                openid: openid.to_string(),
                phone: phone.to_string(),
                issued_at: SystemTime::now(),
                used: false,
            },
        );
        code
    }

    /// What an old client's `getPhoneNumber` hands over: the phone as open data, encrypted with
    /// the user's current session_key, stamped with `appid`'s watermark. `None` before any login.
    pub fn encrypted_phone(
        &self,
        openid: &str,
        phone: &str,
        appid: &str,
    ) -> Option<(String, String)> {
        let key = self.session_key_of(openid)?;
        let plain = serde_json::json!({
            "phoneNumber": phone,
            "purePhoneNumber": phone,
            "countryCode": "86",
            "watermark": { "timestamp": unix_now(), "appid": appid },
        });
        let iv = B64.encode(crate::random::bytes::<16>());
        let data = crypto::encrypt_open_data(&key, &iv, plain.to_string().as_bytes()).ok()?;
        Some((data, iv))
    }

    /// What `wx.getUserInfo` hands the client with `rawData`: `sha1(rawData + session_key)` with
    /// the user's current key.
    pub fn sign_raw_data(&self, openid: &str, raw_data: &str) -> Option<String> {
        use sha1::Digest as _;
        let key = self.session_key_of(openid)?;
        let digest = sha1::Sha1::digest(format!("{raw_data}{key}").as_bytes());
        Some(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Replaces the user's session_key, as `resetusersessionkey` would.
    pub fn reset_session_key(&self, openid: &str) -> String {
        let key = B64.encode(crate::random::bytes::<16>());
        self.state()
            .session_keys
            .insert(openid.to_string(), key.clone());
        key
    }
}
