-- scripts/bench, figure 4: :n live sessions straight into user_session, spread over the users
-- that exist, and the HS256 token of each (src/token.rs's format: sub, jti, iat, exp, iss),
-- signed with :'secret' (the server's JWT_SECRET). Prints one token per line.
-- Needs pgcrypto (hmac, gen_random_bytes), part of PostgreSQL's standard contrib modules.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE FUNCTION pg_temp.b64url(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT rtrim(translate(encode($1, 'base64'), E'+/\n', '-_'), '=') $$;

WITH u AS (SELECT array_agg(id ORDER BY id) AS ids FROM wx_user)
INSERT INTO user_session (id, user_id, session_key_enc, expires_at, client_ip, user_agent)
SELECT replace(gen_random_uuid()::text, '-', ''),
       u.ids[1 + g.i % cardinality(u.ids)],
       gen_random_bytes(52),
       now() + interval '1 day',
       '127.0.0.1',
       'scripts/bench'
FROM u, generate_series(0, :n - 1) AS g(i);

\pset tuples_only on
\pset format unaligned
SELECT t.signing_input || '.'
       || pg_temp.b64url(hmac(t.signing_input, :'secret', 'sha256'))
FROM (
    SELECT pg_temp.b64url(convert_to('{"alg":"HS256","typ":"JWT"}', 'UTF8')) || '.'
           || pg_temp.b64url(convert_to(json_build_object(
                  'sub', s.user_id::text,
                  'jti', s.id,
                  'iat', extract(epoch FROM s.created_at)::bigint,
                  'exp', extract(epoch FROM s.expires_at)::bigint,
                  'iss', 'wxauth')::text, 'UTF8')) AS signing_input
    FROM user_session s
    WHERE s.user_agent = 'scripts/bench'
) t;
