ALTER TABLE meeting_reminder DROP COLUMN app_id;
