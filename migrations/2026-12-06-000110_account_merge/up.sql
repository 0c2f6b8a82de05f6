-- Two accounts that turn out to be one person (an account made before its app was bound to the
-- open platform, then the unionid arrives from another app's account): the older one takes in
-- the other. One row per merge, for the status page's count and the survivor's export.
-- Expand only: a new table the previous release never reads.
CREATE TABLE account_merge (
    id          BIGSERIAL   PRIMARY KEY,
    survivor_id BIGINT      REFERENCES wx_user (id) ON DELETE CASCADE,
    -- The id the merged account had; its row is gone.
    merged_id   BIGINT      NOT NULL,
    -- What revealed it: 'unionid' (a login), 'link' (the person, by hand).
    reason      VARCHAR(16) NOT NULL,
    merged_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX account_merge_survivor_idx ON account_merge (survivor_id);
