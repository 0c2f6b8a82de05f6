-- Meeting reminders by subscribe message: one row per member who consented (in
-- wx.requestSubscribeMessage) to one reminder for one meeting. WeChat's consent is one message
-- per `accept`, so a row is one message at most.
--   status 0 waiting, 1 sending (claimed by an instance), 2 sent, 3 refused (WeChat answered
--   43101: no consent any more), 4 failed (another error; given up).
-- A row is claimed (0 → 1) with FOR UPDATE SKIP LOCKED and committed before the message goes
-- out, and only a busy or slow WeChat puts it back to 0; so two instances, or one restarted,
-- never send it twice. A row left in 1 by an instance that died during the call stays there:
-- whether WeChat got the message is unknown, and a second one is worse than none.
CREATE TABLE meeting_reminder (
    meeting_id   BIGINT       NOT NULL REFERENCES meeting (id) ON DELETE CASCADE,
    user_id      BIGINT       NOT NULL REFERENCES wx_user (id) ON DELETE CASCADE,
    template_id  VARCHAR(128) NOT NULL,
    status       SMALLINT     NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2, 3, 4)),
    consented_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    claimed_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    CONSTRAINT meeting_reminder_pkey PRIMARY KEY (meeting_id, user_id)
);

COMMENT ON COLUMN meeting_reminder.status IS '0 waiting, 1 sending, 2 sent, 3 refused (43101), 4 failed';

-- The sender's question every tick: the waiting rows. Few of them wait at any time (reminders are
-- sent within minutes of their meeting's start), so a partial index keeps the scan short however
-- many have been sent.
CREATE INDEX meeting_reminder_waiting_idx ON meeting_reminder (meeting_id) WHERE status = 0;

-- Erasing an account deletes its rows (ON DELETE CASCADE); the key leads with meeting_id.
CREATE INDEX meeting_reminder_user_idx ON meeting_reminder (user_id);
