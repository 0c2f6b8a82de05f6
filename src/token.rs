//! Login tokens: JWT HS256 carrying the user id (`sub`) and the session id (`jti`). A valid
//! signature is not enough: the SessionActor must also hold the session, so logout kills a
//! token at once.
//!
//! Tokens are signed by jsonwebtoken. They are verified here, on every authenticated request,
//! with the same audited primitives (the RustCrypto `hmac`, constant-time comparison, `base64`,
//! `serde_json`) but without jsonwebtoken's general-purpose `decode`, which rebuilds the HMAC key
//! and parses the claims twice per call, most of the check's cost on every request. The key
//! schedule runs once, the signature is checked before anything in the token is parsed, and what
//! a verified token says is parsed once per worker thread (see `TokenIssuer::verify`).

use std::cell::RefCell;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::thread_memo::{BoundedMemo, owner_id};

pub(crate) const ISSUER: &str = "wxauth";
/// A token longer than this is refused before any parsing.
pub(crate) const MAX_TOKEN_LEN: usize = 2048;
/// Clock skew tolerated between instances for `iat`.
const IAT_SKEW_SECS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) sub: String,
    pub(crate) jti: String,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) iss: String,
}

impl Claims {
    pub(crate) fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok().filter(|id| *id > 0)
    }
}

/// Why a token was refused. Only a token whose signature verifies can be `Expired`: what a
/// token says is not read, let alone told, before its signature is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not a token's shape: three base64url parts, a 32-byte signature, at most `MAX_TOKEN_LEN`.
    #[error("token malformed")]
    Malformed,
    /// Token-shaped, but forged, altered, signed with another key, or saying what we never sign.
    #[error("token invalid")]
    Invalid,
    /// Ours and intact, but past its `exp`.
    #[error("token expired")]
    Expired,
}

/// A token that passed `TokenIssuer::verify`: whose it is and which session it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedToken {
    pub(crate) user_id: i64,
    pub(crate) jti: String,
    pub(crate) expires_at: i64,
}

/// A freshly issued token and what the session store needs to know about it.
pub(crate) struct IssuedToken {
    pub(crate) token: String,
    pub(crate) expires_at: i64,
}

/// The header `issue` writes (jsonwebtoken's `Header::new(HS256)`), base64url: tokens carrying
/// it need no header parsing. Any other header is parsed and must say HS256.
const ISSUED_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

/// The part of a token's header that matters: only HS256 is accepted.
#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
    /// Extensions a verifier must understand; wxauth understands none.
    crit: Option<serde::de::IgnoredAny>,
}

pub(crate) struct TokenIssuer {
    encoding: EncodingKey,
    /// HMAC-SHA256 already keyed with the secret; cloned for each verification. (HMAC takes
    /// keys of any length, so this is never `None`; if it were, every token would be refused.)
    mac: Option<Hmac<Sha256>>,
    ttl: Duration,
    /// This issuer's part of the per-thread memo of verified tokens.
    id: u64,
}

impl TokenIssuer {
    pub(crate) fn new(secret: &[u8], ttl: Duration) -> TokenIssuer {
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            mac: <Hmac<Sha256> as Mac>::new_from_slice(secret).ok(),
            ttl,
            id: owner_id(),
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// When a token issued at `now` expires.
    pub(crate) fn expires_at(&self, now: i64) -> i64 {
        now + self.ttl.as_secs() as i64
    }

    /// The tests' shorthand: a token for a new session with the usual expiry.
    #[cfg(test)]
    pub(crate) fn issue(
        &self,
        user_id: i64,
        now: i64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        self.issue_for(user_id, new_jti(), now, self.expires_at(now))
    }

    /// A token for a session whose id and expiry are already decided: a login chooses its
    /// session id before the statement that stores it with the user, and a refresh's expiry may
    /// be cut short by the session store.
    pub(crate) fn issue_for(
        &self,
        user_id: i64,
        jti: String,
        now: i64,
        expires_at: i64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: user_id.to_string(),
            jti,
            iat: now,
            exp: expires_at,
            iss: ISSUER.to_string(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken { token, expires_at })
    }

    /// Checks signature, algorithm, issuer, expiry and a sane `iat`; liveness is the session
    /// store's business.
    ///
    /// The signature is checked on every call. What the signed part says is parsed once per
    /// worker thread and then remembered under the signature (`VERIFIED`): for one key, a
    /// signature that verifies names exactly one header and payload, so the memo can only ever
    /// answer for the very bytes it was filled from. Only `exp` changes its verdict with time,
    /// and it is checked on every call; a future `iat` cannot become less acceptable later.
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // The signature first, over exactly the bytes that were signed, compared in constant
        // time: nothing a forger wrote is parsed.
        let mut tag = [0u8; SIGNATURE_LEN];
        match B64URL.decode_slice(signature, &mut tag) {
            Ok(SIGNATURE_LEN) => {}
            _ => return Err(TokenError::Malformed),
        }
        let mut mac = self.mac.clone().ok_or(TokenError::Invalid)?;
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&tag).map_err(|_| TokenError::Invalid)?;

        let key = (self.id, tag);
        let known = VERIFIED.with_borrow(|memo| memo.get(&key).cloned());
        let verified = match known {
            Some(verified) => verified,
            None => {
                let verified = parse_signed(header, payload, now)?;
                VERIFIED.with_borrow_mut(|memo| memo.insert(key, verified.clone()));
                verified
            }
        };
        if verified.expires_at <= now {
            return Err(TokenError::Expired);
        }
        Ok(verified)
    }
}

/// A new session id (a token's `jti`).
pub(crate) fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// HS256 signatures are 32 bytes (43 base64url characters).
const SIGNATURE_LEN: usize = 32;

/// Tokens remembered per worker thread; when full the memo starts over. At about 100 bytes an
/// entry this is under half a MiB per thread, and a busy server's live tokens cycle through it.
const VERIFIED_PER_THREAD: usize = 4096;

thread_local! {
    /// Verified tokens by (issuer, signature): see `TokenIssuer::verify`.
    static VERIFIED: RefCell<BoundedMemo<(u64, [u8; SIGNATURE_LEN]), VerifiedToken>> =
        RefCell::new(BoundedMemo::new(VERIFIED_PER_THREAD));
}

/// What a token with a valid signature must say to be accepted, checked once per token.
fn parse_signed(header: &str, payload: &str, now: i64) -> Result<VerifiedToken, TokenError> {
    if header != ISSUED_HEADER {
        let header: JwtHeader = decode_part(header)?;
        if header.alg != "HS256" || header.crit.is_some() {
            return Err(TokenError::Invalid);
        }
    }
    let claims: Claims = decode_part(payload)?;
    if claims.iss != ISSUER || claims.iat > now + IAT_SKEW_SECS {
        return Err(TokenError::Invalid);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    let user_id = claims.user_id().ok_or(TokenError::Invalid)?;
    Ok(VerifiedToken {
        user_id,
        jti: claims.jti,
        expires_at: claims.exp,
    })
}

/// A base64url JSON part of a token.
fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = B64URL.decode(part).map_err(|_| TokenError::Invalid)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

    /// jsonwebtoken also checks `exp` against the wall clock, so tests use the real time.
    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            b"test-secret-of-enough-length-0123456789",
            Duration::from_secs(3600),
        )
    }

    fn forge(header: &str, claims: &serde_json::Value, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            B64URL.encode(header),
            B64URL.encode(claims.to_string()),
            sig
        )
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let n = now();
        let jti = new_jti();
        let t = issuer()
            .issue_for(42, jti.clone(), n, issuer().expires_at(n))
            .expect("issue");
        assert!(
            t.token.starts_with(&format!("{ISSUED_HEADER}.")),
            "the header verify knows without parsing"
        );
        let claims = issuer().verify(&t.token, n + 10).expect("valid");
        assert_eq!(claims.user_id, 42);
        assert_eq!(claims.jti, jti);
        assert_eq!(t.expires_at, n + 3600);
        assert_eq!(
            issuer().verify(&t.token, n + 3600),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_remembered_token_still_expires_and_still_needs_its_signature() {
        let n = now();
        let issuer = issuer();
        let t = issuer.issue(42, n).expect("issue");
        // Twice: the second answer comes from the memo and must be the same.
        let first = issuer.verify(&t.token, n).expect("valid");
        assert_eq!(issuer.verify(&t.token, n + 1), Ok(first));
        assert_eq!(
            issuer.verify(&t.token, n + 3600),
            Err(TokenError::Expired),
            "expiry is checked on every call, memo or not"
        );
        // Same signature, another payload: the memo is keyed by a signature that must verify.
        let (_, signature) = t.token.rsplit_once('.').expect("dot");
        let other = issuer.issue(43, n).expect("issue").token;
        let (other_signed, _) = other.rsplit_once('.').expect("dot");
        let spliced = format!("{other_signed}.{signature}");
        assert_eq!(issuer.verify(&spliced, n), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_remembered_by_one_issuer_means_nothing_to_another() {
        let n = now();
        let ours = issuer();
        let t = ours.issue(42, n).expect("issue");
        assert!(ours.verify(&t.token, n).is_ok());
        // Same secret, another issuer (another process, or a test's second server): the token
        // verifies on its own merits, not through the first issuer's memo.
        assert!(issuer().verify(&t.token, n).is_ok());
        let other = TokenIssuer::new(
            b"another-secret-another-secret-000",
            Duration::from_secs(3600),
        );
        assert_eq!(other.verify(&t.token, n), Err(TokenError::Invalid));
    }

    #[test]
    fn the_memo_stays_bounded() {
        let n = now();
        let issuer = issuer();
        for user in 1..=(VERIFIED_PER_THREAD as i64 + 10) {
            let t = issuer.issue(user, n).expect("issue");
            assert_eq!(issuer.verify(&t.token, n).map(|v| v.user_id), Ok(user));
        }
        VERIFIED.with_borrow(|memo| assert!(memo.len() <= VERIFIED_PER_THREAD));
    }

    #[test]
    fn forged_and_broken_tokens_are_refused() {
        let t = issuer().issue(42, now()).expect("issue").token;
        let other = TokenIssuer::new(
            b"another-secret-another-secret-000",
            Duration::from_secs(3600),
        );
        assert!(other.verify(&t, now()).is_err(), "wrong key");
        let mut tampered = t.clone();
        tampered.insert(t.find('.').expect("dot") + 3, 'x');
        assert!(
            issuer().verify(&tampered, now()).is_err(),
            "tampered payload"
        );
        let claims =
            serde_json::json!({"sub":"42","jti":"j","iat":now(),"exp":now()+100,"iss":"wxauth"});
        let none = forge(r#"{"alg":"none","typ":"JWT"}"#, &claims, "");
        assert!(issuer().verify(&none, now()).is_err(), "alg none");
        let rs = forge(r#"{"alg":"RS256","typ":"JWT"}"#, &claims, "AAAA");
        assert!(issuer().verify(&rs, now()).is_err(), "RS256");
        for junk in ["", "garbage", "a.b.c", &"x".repeat(5000)] {
            assert!(issuer().verify(junk, now()).is_err(), "junk {junk:.10}");
        }
    }

    #[test]
    fn a_refusal_says_shape_signature_or_expiry_and_expiry_only_when_signed() {
        let n = now();
        let t = issuer().issue(42, n).expect("issue").token;
        for junk in ["", "garbage", "a.b", "a.b.c", "a.b.c.d", &"x".repeat(5000)] {
            assert_eq!(
                issuer().verify(junk, n),
                Err(TokenError::Malformed),
                "{junk:.10}"
            );
        }
        let other = TokenIssuer::new(
            b"another-secret-another-secret-000",
            Duration::from_secs(3600),
        );
        assert_eq!(other.verify(&t, n), Err(TokenError::Invalid), "wrong key");
        // An expired token signed with another key is invalid, not expired: nothing it says is
        // read before its signature is checked.
        assert_eq!(
            other.verify(&t, n + 7200),
            Err(TokenError::Invalid),
            "expired and forged"
        );
        assert_eq!(issuer().verify(&t, n + 7200), Err(TokenError::Expired));
    }

    #[test]
    fn claims_we_did_not_issue_are_refused() {
        let secret = b"test-secret-of-enough-length-0123456789";
        let sign = |claims: serde_json::Value| {
            encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .expect("encode")
        };
        let wrong_iss = sign(
            serde_json::json!({"sub":"1","jti":"j","iat":now(),"exp":now()+100,"iss":"other"}),
        );
        assert!(issuer().verify(&wrong_iss, now()).is_err());
        let future_iat = sign(
            serde_json::json!({"sub":"1","jti":"j","iat":now()+3600,"exp":now()+7200,"iss":"wxauth"}),
        );
        assert!(issuer().verify(&future_iat, now()).is_err());
        let bad_sub = sign(
            serde_json::json!({"sub":"abc","jti":"j","iat":now(),"exp":now()+100,"iss":"wxauth"}),
        );
        assert!(issuer().verify(&bad_sub, now()).is_err());
        let no_exp = sign(serde_json::json!({"sub":"1","jti":"j","iat":now(),"iss":"wxauth"}));
        assert!(issuer().verify(&no_exp, now()).is_err());
    }

    #[test]
    fn only_hs256_with_our_key_in_three_parts_is_accepted() {
        let secret = b"test-secret-of-enough-length-0123456789";
        let claims =
            serde_json::json!({"sub":"7","jti":"j","iat":now(),"exp":now()+100,"iss":"wxauth"});
        // Correctly MACed with our key, but the header names another algorithm, or an extension.
        let mac_signed = |header: &str| {
            let input = format!(
                "{}.{}",
                B64URL.encode(header),
                B64URL.encode(claims.to_string())
            );
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("key");
            mac.update(input.as_bytes());
            format!("{input}.{}", B64URL.encode(mac.finalize().into_bytes()))
        };
        let good = mac_signed(r#"{"alg":"HS256","typ":"JWT"}"#);
        assert_eq!(issuer().verify(&good, now()).expect("valid").user_id, 7);
        for header in [
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"alg":"none"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"HS256","crit":["exp"]}"#,
        ] {
            assert!(
                issuer().verify(&mac_signed(header), now()).is_err(),
                "{header}"
            );
        }
        assert!(
            issuer().verify(&format!("{good}.x"), now()).is_err(),
            "four parts"
        );
        assert!(
            issuer().verify(&format!("{good}="), now()).is_err(),
            "padding"
        );
        let (input, _) = good.rsplit_once('.').expect("dot");
        assert!(
            issuer().verify(&format!("{input}."), now()).is_err(),
            "no signature"
        );
    }
}
