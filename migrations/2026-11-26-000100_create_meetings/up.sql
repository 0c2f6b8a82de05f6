-- The OA meeting app behind the login: meetings, who joined them, and the home page's swiper.

-- meeting.state is the meeting's life cycle as its publisher decides it:
--   1 published (已发布), 2 cancelled (已取消).
-- Whether a meeting is upcoming, ongoing or finished is not stored: it follows from start_time,
-- end_time and the clock, and a stored copy would be stale the minute a meeting starts.
-- 0 is kept free for drafts, which this version does not have: meeting/list shows every state to
-- everyone, so adding drafts means teaching the list to hide them first.
CREATE TABLE meeting (
    id           BIGSERIAL    PRIMARY KEY,
    title        VARCHAR(100) NOT NULL CHECK (btrim(title) <> ''),
    content      TEXT         NOT NULL DEFAULT '',
    location     VARCHAR(100) NOT NULL DEFAULT '',
    start_time   TIMESTAMPTZ  NOT NULL,
    end_time     TIMESTAMPTZ  NOT NULL,
    publisher_id BIGINT       NOT NULL REFERENCES wx_user (id),
    state        SMALLINT     NOT NULL DEFAULT 1 CHECK (state IN (1, 2)),
    cover        VARCHAR(512) NOT NULL DEFAULT '',
    add_time     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    update_time  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT meeting_end_after_start CHECK (end_time > start_time)
);

COMMENT ON COLUMN meeting.state IS '1 published, 2 cancelled (0 reserved for drafts)';

-- meeting/list is `ORDER BY start_time DESC, id DESC LIMIT n OFFSET m`. Read backwards, this
-- index hands the rows over already in that order, so a page costs offset + limit index entries
-- instead of a sort of the whole table. id breaks ties between equal start times, which keeps
-- pages from overlapping or skipping rows.
CREATE INDEX meeting_start_time_idx ON meeting (start_time, id);

-- The same list filtered with `state = $1`: equality on the leading column, then the order, again
-- without a sort; what matters is the rare state (cancelled), whose rows would otherwise be
-- picked one by one out of the whole table. home/index's next upcoming meetings
-- (`state = 1 AND start_time > now() ORDER BY start_time, id LIMIT 5`) can use either index;
-- with mostly published meetings PostgreSQL takes the one above, which is just as good.
CREATE INDEX meeting_state_start_time_idx ON meeting (state, start_time, id);

-- user/index counts the meetings a user published. PostgreSQL does not index a foreign key's
-- referencing column by itself.
CREATE INDEX meeting_publisher_idx ON meeting (publisher_id);

-- Who joined which meeting. The primary key is the unique (meeting_id, user_id) that makes a join
-- idempotent even when a user taps twenty times at once (INSERT ... ON CONFLICT DO NOTHING), and
-- because it leads with meeting_id it also serves a meeting's member count.
CREATE TABLE meeting_member (
    meeting_id BIGINT      NOT NULL REFERENCES meeting (id) ON DELETE CASCADE,
    user_id    BIGINT      NOT NULL REFERENCES wx_user (id),
    join_time  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT meeting_member_pkey PRIMARY KEY (meeting_id, user_id)
);

-- user/index counts a user's memberships; the primary key cannot help, it starts with meeting_id.
CREATE INDEX meeting_member_user_idx ON meeting_member (user_id);

-- The images on top of the home page.
CREATE TABLE swiper_image (
    id          BIGSERIAL    PRIMARY KEY,
    url         VARCHAR(512) NOT NULL CHECK (url <> ''),
    link        VARCHAR(512) NOT NULL DEFAULT '',
    sort_order  INTEGER      NOT NULL DEFAULT 0,
    enabled     BOOLEAN      NOT NULL DEFAULT true,
    add_time    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    update_time TIMESTAMPTZ  NOT NULL DEFAULT now()
);

COMMENT ON COLUMN swiper_image.link IS 'where a tap leads: a mini-program page path, or empty for none';
COMMENT ON COLUMN swiper_image.sort_order IS 'ascending; ties in insertion order';

-- swiperImgs and home/index read `WHERE enabled ORDER BY sort_order, id`. With the usual handful
-- of rows PostgreSQL rightly reads the table itself; the partial index (enabled rows only, in
-- display order) keeps that query a short ordered scan once disabled images pile up.
CREATE INDEX swiper_image_display_idx ON swiper_image (sort_order, id) WHERE enabled;
