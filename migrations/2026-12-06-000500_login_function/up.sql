-- The login's one statement (identity → user → session), kept in the database as a function.
--
-- Statements are sent unnamed (a transaction pooler such as PgBouncer may run consecutive
-- transactions of one client connection on different server connections, where a named
-- statement prepared earlier does not exist), so PostgreSQL parses and plans each one again. For
-- this statement, ten CTEs deep, that was most of a login's cost in the database: three times the
-- CPU of running it prepared. Inside a PL/pgSQL function the statement is planned once per server
-- connection and kept, whatever the pooler does; what travels is a one-line call. (Forcing the
-- generic plan with a SET clause on the function was measured slower: setting it costs more, per
-- call, than PostgreSQL's own choice between its plans.)
--
-- Expand only: the previous release never calls it.
CREATE FUNCTION wxauth_login(
    p_username        TEXT,
    p_nickname        TEXT,
    p_avatar          TEXT,
    p_gender          SMALLINT,
    p_user_key        TEXT,
    p_unionid         TEXT,
    p_at              TIMESTAMPTZ,
    p_ip              TEXT,
    p_app_id          TEXT,
    p_subject         TEXT,
    p_kind            SMALLINT,
    p_default_app     BOOLEAN,
    p_session_id      TEXT,
    p_session_key_enc BYTEA,
    p_expires_at      TIMESTAMPTZ,
    p_user_agent      TEXT
) RETURNS TABLE (account wx_user, session_stored BOOLEAN, identity_user_id BIGINT,
                 unionid_user_id BIGINT)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    -- The identity's user; else, in the default app, a user of the release before identities
    -- (found by its openid, not yet given an identity); else the user of the unionid.
    RETURN QUERY
    WITH known AS (
        SELECT i.user_id FROM user_identity i WHERE i.app_id = p_app_id AND i.subject = p_subject
    ), legacy AS (
        SELECT w.id AS user_id FROM wx_user w
         WHERE p_default_app AND w.weixin_openid = p_subject
           AND NOT EXISTS (SELECT 1 FROM user_identity i WHERE i.user_id = w.id)
    ), by_unionid AS (
        SELECT w.id AS user_id FROM wx_user w WHERE w.unionid = p_unionid
    ), existing AS (
        SELECT found.user_id FROM (
            SELECT user_id, 1 AS rank FROM known
            UNION ALL SELECT user_id, 2 FROM legacy
            UNION ALL SELECT user_id, 3 FROM by_unionid
        ) found ORDER BY found.rank LIMIT 1
    ), created AS (
        INSERT INTO wx_user (username, nickname, avatar, gender, weixin_openid, unionid,
                             last_login_time, last_login_ip, add_time, update_time)
        SELECT p_username, p_nickname, p_avatar, p_gender, p_user_key, p_unionid, p_at, p_ip,
               p_at, p_at
         WHERE NOT EXISTS (SELECT 1 FROM existing)
        ON CONFLICT DO NOTHING
        RETURNING *
    ), touched AS (
        -- The unionid is taken only when no other user has it: that is a merge, decided by the
        -- caller on unionid_user_id.
        UPDATE wx_user w
           SET last_login_time = p_at,
               last_login_ip = p_ip,
               update_time = p_at,
               unionid = CASE
                   WHEN w.unionid IS NULL
                        AND NOT EXISTS (SELECT 1 FROM wx_user o WHERE o.unionid = p_unionid)
                   THEN p_unionid ELSE w.unionid END
         WHERE w.id = (SELECT user_id FROM existing)
        RETURNING w.*
    ), u AS (
        SELECT * FROM created UNION ALL SELECT * FROM touched
    ), identity AS (
        INSERT INTO user_identity AS i (user_id, kind, app_id, subject, unionid, add_time,
                                        last_login_time)
        SELECT u.id, p_kind, p_app_id, p_subject, p_unionid, p_at, p_at FROM u
        ON CONFLICT (app_id, subject) DO UPDATE
           SET last_login_time = EXCLUDED.last_login_time,
               unionid = coalesce(EXCLUDED.unionid, i.unionid)
        RETURNING i.user_id
    ), s AS (
        -- Only for a usable user, and only when the identity is this user's (a concurrent
        -- login may have given it to another: the caller runs the statement again).
        INSERT INTO user_session (id, user_id, app_id, session_key_enc, expires_at, client_ip,
                                  user_agent)
        SELECT p_session_id, u.id, p_app_id, p_session_key_enc, p_expires_at, p_ip, p_user_agent
          FROM u JOIN identity i ON i.user_id = u.id
         WHERE u.status = 0 AND NOT u.deleted
        RETURNING user_session.id
    )
    SELECT ROW(u.*)::wx_user,
           EXISTS (SELECT 1 FROM s),
           (SELECT identity.user_id FROM identity),
           (SELECT o.id FROM wx_user o
             WHERE o.unionid = p_unionid AND o.id <> u.id AND u.unionid IS NULL)
      FROM u;
END
$$;
