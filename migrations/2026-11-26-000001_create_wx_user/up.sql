-- The mini-program's users. One row per WeChat openid: the unique constraint is what makes
-- concurrent first logins of the same user end in one row (INSERT ... ON CONFLICT).
-- No password column: WeChat login has no password, and storing the openid as one (as the seed
-- code did) would turn a semi-public identifier into a credential.
CREATE TABLE wx_user (
    id              BIGSERIAL PRIMARY KEY,
    username        VARCHAR(63)  NOT NULL,
    nickname        VARCHAR(64)  NOT NULL DEFAULT '',
    avatar          VARCHAR(512) NOT NULL DEFAULT '',
    gender          SMALLINT     NOT NULL DEFAULT 0 CHECK (gender IN (0, 1, 2)),
    mobile          VARCHAR(20)  NOT NULL DEFAULT '',
    weixin_openid   VARCHAR(128) NOT NULL,
    unionid         VARCHAR(128),
    user_level      SMALLINT     NOT NULL DEFAULT 0,
    status          SMALLINT     NOT NULL DEFAULT 0,
    last_login_time TIMESTAMPTZ,
    last_login_ip   VARCHAR(63)  NOT NULL DEFAULT '',
    share_user_id   BIGINT,
    add_time        TIMESTAMPTZ  NOT NULL DEFAULT now(),
    update_time     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    deleted         BOOLEAN      NOT NULL DEFAULT false,
    CONSTRAINT wx_user_weixin_openid_key UNIQUE (weixin_openid)
);

COMMENT ON COLUMN wx_user.gender IS '0 unknown, 1 male, 2 female (WeChat''s values)';
COMMENT ON COLUMN wx_user.user_level IS '0 普通用户, 1 VIP用户, 2 高级VIP用户';
COMMENT ON COLUMN wx_user.status IS '0 usable, 1 disabled, 2 deregistered';
