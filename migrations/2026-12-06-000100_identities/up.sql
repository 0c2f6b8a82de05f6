-- One person, one account, across a company's apps. WeChat gives each mini-program its own openid
-- for the same person (and a WeCom corp its own userid); a user now has identities, one per
-- (app, subject), and the login finds the user through them.
--
-- Expand only: the previous release keeps working on this schema. It still finds and creates
-- users by wx_user.weixin_openid (kept, with its unique constraint), never reads the new table, and
-- the new columns have defaults it does not need to know. What it creates while both run has no
-- identity yet; this release's login adopts such a user as the default app's (see db::sessions),
-- and its start gives every user still without one an identity of the default app. The appid of
-- the default app is configuration, which SQL cannot know: hence that back-fill at start rather
-- than here. Dropping the legacy path (and wx_user.weixin_openid's role) is a later contract step.
CREATE TABLE user_identity (
    id              BIGSERIAL    PRIMARY KEY,
    user_id         BIGINT       NOT NULL REFERENCES wx_user (id) ON DELETE CASCADE,
    kind            SMALLINT     NOT NULL CHECK (kind IN (1, 2)),
    -- The mini-program's appid, or the WeCom corpid.
    app_id          VARCHAR(64)  NOT NULL,
    -- The openid in that mini-program, or the userid in that corp.
    subject         VARCHAR(128) NOT NULL,
    -- As WeChat last reported it with this identity; the person's own is wx_user.unionid.
    unionid         VARCHAR(128),
    add_time        TIMESTAMPTZ  NOT NULL DEFAULT now(),
    last_login_time TIMESTAMPTZ,
    -- The rule that makes concurrent first logins of one identity end in one row.
    CONSTRAINT user_identity_app_subject_key UNIQUE (app_id, subject)
);

COMMENT ON COLUMN user_identity.kind IS '1 mini-program (appid, openid), 2 WeCom (corpid, userid)';

-- A user's identities: the export, merging, and the login's check for users without one.
CREATE INDEX user_identity_user_idx ON user_identity (user_id);

-- The app a session was opened in: logout ends that app's session, bindPhone uses that app's
-- access token and openid. '' is a session the previous release opened: the default app's.
ALTER TABLE user_session ADD COLUMN app_id VARCHAR(64) NOT NULL DEFAULT '';

-- The app of a login attempt, for the admin page's counts per app. '' as above.
ALTER TABLE login_log ADD COLUMN app_id VARCHAR(64) NOT NULL DEFAULT '';
