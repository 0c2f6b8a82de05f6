-- Account deletion (注销账号). Expand-only: the release before this one runs unchanged on the
-- migrated schema (a new table it never reads, and a status value it already treats as unusable).

-- One row per deletion request. While it is pending (completed_at IS NULL) the user's wx_user row
-- has status 2, which every usability check already refuses, and prior_status keeps the status
-- to return to when the user restores the account by logging in within the grace period.
-- Once the personal data is gone, user_id is cleared and completed_at set: the row stays only
-- so the admin page can count completed deletions, and links to nothing.
CREATE TABLE account_deletion (
    id           BIGSERIAL    PRIMARY KEY,
    user_id      BIGINT       REFERENCES wx_user (id) ON DELETE SET NULL,
    requested_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    due_at       TIMESTAMPTZ  NOT NULL,
    prior_status SMALLINT     NOT NULL DEFAULT 0,
    completed_at TIMESTAMPTZ,
    CONSTRAINT account_deletion_user_key UNIQUE (user_id),
    CONSTRAINT account_deletion_completed_unlinked CHECK (completed_at IS NULL OR user_id IS NULL)
);

COMMENT ON COLUMN account_deletion.prior_status IS 'wx_user.status before the request (0 usable, 1 disabled)';

-- The sweeper's query: pending requests whose grace period is over, oldest first.
CREATE INDEX account_deletion_due_idx ON account_deletion (due_at) WHERE completed_at IS NULL;

-- An erasure also anonymises the failed login attempts that carry only the user's masked openid
-- (no user id yet); without this index each erasure would read the whole log.
CREATE INDEX login_log_openid_masked_idx ON login_log (openid_masked) WHERE user_id IS NULL;

COMMENT ON COLUMN wx_user.status IS '0 usable, 1 disabled, 2 deletion pending (see account_deletion)';
