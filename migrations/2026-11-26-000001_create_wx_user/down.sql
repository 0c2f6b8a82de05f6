DROP TABLE wx_user;
