ALTER TABLE login_log DROP COLUMN app_id;
ALTER TABLE user_session DROP COLUMN app_id;
DROP TABLE user_identity;
