DROP TABLE meeting_reminder;
