-- A user who is disabled (status <> 0) or deleted loses every session at once, on every instance,
-- whoever made the change: the admin API, a support engineer's SQL, a batch job. Doing it in the
-- database means no code path can forget it, and the hot path (a cached token check) never needs
-- to read wx_user.
CREATE FUNCTION wx_user_revoke_sessions() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- The rows go with ON DELETE CASCADE; the caches still need telling.
        PERFORM pg_notify('wxauth_session', 'u:' || OLD.id);
        RETURN OLD;
    END IF;
    IF (NEW.status <> 0 OR NEW.deleted) AND NOT (OLD.status <> 0 OR OLD.deleted) THEN
        UPDATE user_session SET revoked_at = now() WHERE user_id = NEW.id AND revoked_at IS NULL;
        PERFORM pg_notify('wxauth_session', 'u:' || NEW.id);
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER wx_user_revoke_sessions
    AFTER UPDATE OF status, deleted OR DELETE ON wx_user
    FOR EACH ROW EXECUTE FUNCTION wx_user_revoke_sessions();
