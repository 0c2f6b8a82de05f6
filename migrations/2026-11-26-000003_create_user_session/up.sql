-- One row per login (the token's jti). Tokens are checked against it, so a session survives a
-- restart and every instance sees the same revocations.
CREATE TABLE user_session (
    id              VARCHAR(64)  PRIMARY KEY,               -- the JWT's jti
    user_id         BIGINT       NOT NULL REFERENCES wx_user (id) ON DELETE CASCADE,
    -- AES-256-GCM(nonce || ciphertext) of the WeChat session_key, with `id` as associated data:
    -- a database dump alone does not reveal session keys, and a ciphertext moved to another row
    -- does not decrypt.
    session_key_enc BYTEA        NOT NULL,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ  NOT NULL,
    last_seen_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    revoked_at      TIMESTAMPTZ,
    client_ip       VARCHAR(63)  NOT NULL DEFAULT '',
    user_agent      VARCHAR(255) NOT NULL DEFAULT ''
);

-- logout_all and bans revoke a user's live sessions; bindPhone reads the user's newest one.
CREATE INDEX user_session_user_created ON user_session (user_id, created_at DESC);
-- The periodic sweep deletes by expiry.
CREATE INDEX user_session_expires ON user_session (expires_at);
