DROP TRIGGER user_session_notify_revoked ON user_session;
DROP FUNCTION user_session_notify_revoked();
