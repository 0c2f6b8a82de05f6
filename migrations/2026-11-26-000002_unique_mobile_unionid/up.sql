-- A phone number belongs to one live account: binding it to a second user must fail even when two
-- binds race, so the rule lives in the database, not in a check-then-update in the handler.
-- Empty means "no phone" and is shared by everyone; a deleted account frees its number.
CREATE UNIQUE INDEX wx_user_mobile_key ON wx_user (mobile) WHERE mobile <> '' AND NOT deleted;

-- WeChat gives one unionid per person across an Open Platform account's apps.
CREATE UNIQUE INDEX wx_user_unionid_key ON wx_user (unionid) WHERE unionid IS NOT NULL;
