//! WeChat open-data crypto: AES-128-CBC/PKCS#7 decryption of `encryptedData`, the sha1 `rawData`
//! signature, and the HMAC-SHA256 login-state signature used by `checksession`.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;
type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CryptoError {
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    #[error("{0} has the wrong length")]
    Length(&'static str),
    /// Wrong key or corrupt data: the padding did not check out.
    #[error("decryption failed")]
    Decrypt,
}

fn decode(field: &'static str, value: &str) -> Result<Vec<u8>, CryptoError> {
    B64.decode(value.trim())
        .map_err(|_| CryptoError::Base64(field))
}

fn key_and_iv(session_key: &str, iv: &str) -> Result<([u8; 16], [u8; 16]), CryptoError> {
    let key: [u8; 16] = decode("session_key", session_key)?
        .try_into()
        .map_err(|_| CryptoError::Length("session_key"))?;
    let iv: [u8; 16] = decode("iv", iv)?
        .try_into()
        .map_err(|_| CryptoError::Length("iv"))?;
    Ok((key, iv))
}

/// Decrypts `encryptedData` with the user's session_key. The caller checks the watermark.
pub(crate) fn decrypt_open_data(
    session_key: &str,
    iv: &str,
    encrypted_data: &str,
) -> Result<Vec<u8>, CryptoError> {
    let (key, iv) = key_and_iv(session_key, iv)?;
    let data = decode("encryptedData", encrypted_data)?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(CryptoError::Length("encryptedData"));
    }
    Aes128CbcDec::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&data)
        .map_err(|_| CryptoError::Decrypt)
}

/// The inverse of `decrypt_open_data`, as WeChat does it: used by the fake to mint payloads.
pub(crate) fn encrypt_open_data(
    session_key: &str,
    iv: &str,
    plaintext: &[u8],
) -> Result<String, CryptoError> {
    let (key, iv) = key_and_iv(session_key, iv)?;
    let ct = Aes128CbcEnc::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    Ok(B64.encode(ct))
}

/// `hex(sha1(rawData + session_key))`, compared with the client's signature in constant time.
pub(crate) fn raw_data_signature_matches(
    raw_data: &str,
    session_key: &str,
    signature: &str,
) -> bool {
    let mut h = Sha1::new();
    h.update(raw_data.as_bytes());
    h.update(session_key.as_bytes());
    let expected = hex(&h.finalize());
    expected
        .as_bytes()
        .ct_eq(signature.trim().to_ascii_lowercase().as_bytes())
        .into()
}

/// `hex(hmac_sha256(key = session_key as text, message))`: the login-state signature.
pub(crate) fn login_state_signature(session_key: &str, message: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(session_key.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(message.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    const PLAIN: &str = r#"{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}"#;

    #[test]
    fn official_decryption_vector() {
        let plain = decrypt_open_data(KEY, IV, DATA).expect("official vector decrypts");
        assert_eq!(std::str::from_utf8(&plain).expect("utf8"), PLAIN);
    }

    #[test]
    fn encryption_round_trips_to_the_official_ciphertext() {
        assert_eq!(
            encrypt_open_data(KEY, IV, PLAIN.as_bytes()).expect("encrypts"),
            DATA
        );
    }

    #[test]
    fn official_raw_data_signature_vector() {
        let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
        let key = "HyVFkGl5F5OQWJZZaNzBBg==";
        assert!(raw_data_signature_matches(
            raw,
            key,
            "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
        ));
        assert!(!raw_data_signature_matches(
            raw,
            key,
            "75e81ceda165f4ffa64f4068af58c64b8f54b88d"
        ));
        assert!(!raw_data_signature_matches(
            raw,
            "tiihtNczf5v6AKRyjwEUhQ==",
            "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
        ));
    }

    #[test]
    fn official_hmac_vector() {
        assert_eq!(
            login_state_signature("o0q0otL8aEzpcZL/FT9WsQ==", r#"{"foo":"bar"}"#),
            "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
        );
    }

    #[test]
    fn bad_inputs_are_told_apart() {
        assert_eq!(
            decrypt_open_data(KEY, IV, "%%%"),
            Err(CryptoError::Base64("encryptedData"))
        );
        assert_eq!(
            decrypt_open_data(KEY, "AAAA", DATA),
            Err(CryptoError::Length("iv"))
        );
        assert_eq!(
            decrypt_open_data("not base64!", IV, DATA),
            Err(CryptoError::Base64("session_key"))
        );
        // Truncated to a block boundary: the padding of the new last block is wrong.
        let truncated = B64.encode(&B64.decode(DATA).expect("b64")[..32]);
        assert_eq!(
            decrypt_open_data(KEY, IV, &truncated),
            Err(CryptoError::Decrypt)
        );
        // Another key: the padding check fails.
        assert_eq!(
            decrypt_open_data("HyVFkGl5F5OQWJZZaNzBBg==", IV, DATA),
            Err(CryptoError::Decrypt)
        );
        // Not a whole number of blocks.
        let odd = B64.encode(&B64.decode(DATA).expect("b64")[..20]);
        assert_eq!(
            decrypt_open_data(KEY, IV, &odd),
            Err(CryptoError::Length("encryptedData"))
        );
    }
}
