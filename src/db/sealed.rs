//! Encryption at rest for WeChat session_keys in `user_session`: AES-256-GCM with a random nonce
//! and the session id as associated data (a ciphertext copied to another row does not open).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wechat::SessionKey;

const NONCE_LEN: usize = 12;

pub struct SessionKeyCipher {
    cipher: Aes256Gcm,
}

impl SessionKeyCipher {
    pub fn new(key: &[u8; 32]) -> Self {
        SessionKeyCipher {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A key derived from another secret (the JWT secret), domain-separated so the two keys are
    /// unrelated for an attacker: one secret to configure, two independent uses.
    pub(crate) fn derived_from(secret: &str) -> Self {
        let mut key = [0u8; 32];
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
            mac.update(b"wxauth/user_session.session_key_enc/v1");
            key.copy_from_slice(&mac.finalize().into_bytes());
        }
        SessionKeyCipher::new(&key)
    }

    pub(crate) fn seal(&self, session_id: &str, key: &SessionKey) -> Vec<u8> {
        let nonce_bytes = crate::random::bytes::<NONCE_LEN>();
        let payload = Payload {
            msg: key.expose().as_bytes(),
            aad: session_id.as_bytes(),
        };
        // Encryption with a fresh nonce and a 16-byte tag cannot fail for inputs this small.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        out
    }

    /// `None` when the bytes were not sealed by this key for this session.
    pub(crate) fn open(&self, session_id: &str, sealed: &[u8]) -> Option<SessionKey> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: session_id.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok().map(SessionKey::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_for_their_session_and_key() {
        let cipher = SessionKeyCipher::derived_from("jwt-secret");
        let key = SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==".into());
        let sealed = cipher.seal("jti-1", &key);
        assert!(!String::from_utf8_lossy(&sealed).contains("tiihtNczf5v6AKRyjwEUhQ=="));
        assert_eq!(cipher.open("jti-1", &sealed), Some(key.clone()));
        assert_eq!(cipher.open("jti-2", &sealed), None, "moved to another row");
        assert_eq!(
            SessionKeyCipher::derived_from("other").open("jti-1", &sealed),
            None
        );
        assert_ne!(cipher.seal("jti-1", &key), sealed, "fresh nonce each time");
        assert_eq!(cipher.open("jti-1", &sealed[..10]), None);
    }
}
