-- A session revoked or deleted in SQL (what an operator does about a stolen token) dies on every
-- instance at once, whoever made the change: the caches hear it like a logout. Sessions already
-- revoked, or expired before they are deleted (the sweep), are in no cache that would serve them,
-- so they send nothing and a sweep of many rows stays quiet. PostgreSQL folds a notification
-- identical to one already sent in the same transaction, so the application's own NOTIFY next
-- to its revocations costs nothing extra.
CREATE FUNCTION user_session_notify_revoked() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.revoked_at IS NULL AND OLD.expires_at > now() THEN
            PERFORM pg_notify('wxauth_session', 's:' || OLD.id);
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        PERFORM pg_notify('wxauth_session', 's:' || NEW.id);
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER user_session_notify_revoked
    AFTER UPDATE OF revoked_at OR DELETE ON user_session
    FOR EACH ROW EXECUTE FUNCTION user_session_notify_revoked();
