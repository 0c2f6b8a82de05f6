-- One row per login attempt that got past argument checks: what the admin page's "logins" numbers,
-- chart and recent list are counted from. Pruned after LOGIN_LOG_RETENTION_DAYS.
-- The openid is stored masked (oGZU****VJJE): the page never needs more, and a log kept for weeks
-- should not be a second copy of every user's identifier. user_id is there for joins when needed.
CREATE TABLE login_log (
    id            BIGSERIAL    PRIMARY KEY,
    user_id       BIGINT       REFERENCES wx_user (id) ON DELETE SET NULL,
    openid_masked VARCHAR(16)  NOT NULL DEFAULT '',
    ip            VARCHAR(63)  NOT NULL DEFAULT '',
    user_agent    VARCHAR(256) NOT NULL DEFAULT '',
    errno         INTEGER      NOT NULL,
    add_time      TIMESTAMPTZ  NOT NULL DEFAULT now()
);

-- The page reads the last hour and the newest rows; pruning deletes by age.
CREATE INDEX login_log_add_time_idx ON login_log (add_time);
-- ON DELETE SET NULL on user_id has to find a user's rows without a scan.
CREATE INDEX login_log_user_id_idx ON login_log (user_id);

COMMENT ON COLUMN login_log.errno IS 'the errno the client got: 0 success, else see README';
