DROP TABLE login_log;
