DROP TRIGGER wx_user_revoke_sessions ON wx_user;
DROP FUNCTION wx_user_revoke_sessions();
