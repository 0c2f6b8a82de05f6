//! Login tokens: JWT HS256 carrying the user id (`sub`) and the session id (`jti`). A valid
//! signature is not enough: the SessionActor must also hold the session, so logout kills a
//! token at once.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "wxauth";
/// A token longer than this is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Clock skew tolerated between instances for `iat`.
const IAT_SKEW_SECS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok().filter(|id| *id > 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token malformed, forged or expired")]
    Invalid,
}

/// A freshly issued token and what the session store needs to know about it.
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: i64,
}

pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], ttl: Duration) -> TokenIssuer {
        // Only HS256: a token claiming `none` or an RSA algorithm is refused by the validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(
        &self,
        user_id: i64,
        now: i64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let expires_at = now + self.ttl.as_secs() as i64;
        let claims = Claims {
            sub: user_id.to_string(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat: now,
            exp: expires_at,
            iss: ISSUER.to_string(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            jti: claims.jti,
            expires_at,
        })
    }

    /// Checks signature, algorithm, issuer, expiry and a sane `iat`; liveness is the session
    /// store's business.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        if claims.iat > now + IAT_SKEW_SECS || claims.exp <= now || claims.user_id().is_none() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
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
        let t = issuer().issue(42, n).expect("issue");
        let claims = issuer().verify(&t.token, n + 10).expect("valid");
        assert_eq!(claims.user_id(), Some(42));
        assert_eq!(claims.jti, t.jti);
        assert_eq!(t.expires_at, n + 3600);
        assert!(matches!(
            issuer().verify(&t.token, n + 3600),
            Err(TokenError::Invalid)
        ));
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
}
