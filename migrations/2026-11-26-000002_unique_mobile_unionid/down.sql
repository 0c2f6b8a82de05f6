DROP INDEX wx_user_unionid_key;
DROP INDEX wx_user_mobile_key;
