-- The mini-program a reminder's consent was given in. WeChat keeps a consent per app: the
-- reminder must go out through that app's access token, with that app's template, to the
-- member's openid in that app.
--
-- Expand only: the previous release keeps working on this schema. It never reads the column, and
-- what it writes gets the default, '': the default app's, which is the only app it sends
-- reminders for (as user_session.app_id). The default app's appid is configuration, which SQL
-- cannot know: hence '' rather than a back-fill here.
ALTER TABLE meeting_reminder ADD COLUMN app_id VARCHAR(64) NOT NULL DEFAULT '';
