DROP INDEX login_log_openid_masked_idx;
DROP TABLE account_deletion;
COMMENT ON COLUMN wx_user.status IS '0 usable, 1 disabled, 2 deregistered';
