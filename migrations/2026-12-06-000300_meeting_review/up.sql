-- Content security: a meeting whose text WeChat's msgSecCheck answered `review` (or that could
-- not be checked, with CONTENT_CHECK_ON_ERROR=review) is stored, but shown to nobody but its
-- publisher until an admin decides.
--   0 visible (passed the check, or approved), 1 pending review, 2 rejected.
-- A column of its own rather than more values of `state`: `state` is the publisher's decision
-- (published, cancelled) and both can hold at once (a pending meeting its publisher cancels).
ALTER TABLE meeting
    ADD COLUMN review_state SMALLINT NOT NULL DEFAULT 0 CHECK (review_state IN (0, 1, 2));

COMMENT ON COLUMN meeting.review_state IS '0 visible, 1 pending review, 2 rejected';

-- The status page lists the pending meetings; they are few, so a partial index keeps that a
-- short read however many meetings there are.
CREATE INDEX meeting_pending_review_idx ON meeting (add_time, id) WHERE review_state = 1;
