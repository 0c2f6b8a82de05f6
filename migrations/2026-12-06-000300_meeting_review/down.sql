DROP INDEX meeting_pending_review_idx;
ALTER TABLE meeting DROP COLUMN review_state;
