-- 0007: the producers' door (docs/producers.md). Same number and meaning as
-- migrations/sqlite/0007, which has nothing to do: SQLite has no other machines to serve.
--
-- A program on another machine (a planner that writes the posts) enqueues with
-- `SELECT * FROM executor_enqueue(kind => 'post', text => 'Hello', idempotency_key => 'k1')`
-- instead of writing into `jobs`, whose columns are the daemon's business. The function applies
-- the rules of `executor enqueue` (NewJob::validate in src/jobs.rs, the weighted length of
-- src/length.rs, the reply target of parse_target) and its idempotency keys; tests/producers.rs
-- holds both to the same answers. Every function here is a twin of Rust code: change both.
--
-- Security: the functions run with the search path they were created with (the executor's
-- schema), so a caller's search path can neither hide the tables nor slip other ones in.
-- `executor_enqueue` is SECURITY DEFINER, so a producer's role needs EXECUTE on it and nothing
-- on `jobs`; EXECUTE is taken from PUBLIC and granted by the operator (docs/producers.md).

-- Rust's char::is_whitespace (Unicode White_Space), and the invisible format characters of
-- length::is_invisible: a text of these only is blank.
CREATE OR REPLACE FUNCTION executor_text_is_blank(body text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT body ~ ('^[\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F'
                   '\u205F\u3000\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F'
                   '\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0'
                   '\U000E0000-\U000E007F]*$')
$$;

-- length::weighted_chars: one run of non-space (or space) characters, 1 or 2 each, the parts of
-- an emoji sequence after its first 0.
CREATE OR REPLACE FUNCTION executor_weighted_chars(word text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
    total integer := 0;
    joined boolean := false;
    open_flag boolean := false;
    previous_emoji boolean := false;
    weight integer;
    light boolean;
    code integer;
    ch text;
BEGIN
    -- string_to_array(…, NULL) splits into characters in one pass (substr in a loop would not).
    FOREACH ch IN ARRAY string_to_array(word, NULL) LOOP
        code := ascii(ch);
        light := code <= 4351 OR code BETWEEN 8192 AND 8205 OR code BETWEEN 8208 AND 8223
                 OR code BETWEEN 8242 AND 8247;
        IF joined THEN
            joined := false;
            weight := 0;
        ELSIF code = 8205 AND previous_emoji THEN
            joined := true;
            weight := 0;
        ELSIF code IN (65038, 65039, 8419) OR code BETWEEN 127995 AND 127999
              OR code BETWEEN 917536 AND 917631 THEN
            weight := 0;
        ELSIF code BETWEEN 127462 AND 127487 THEN
            open_flag := NOT open_flag;
            weight := CASE WHEN open_flag THEN 2 ELSE 0 END;
        ELSIF light THEN
            weight := 1;
        ELSE
            weight := 2;
        END IF;
        previous_emoji := NOT light OR code IN (65039, 8419);
        total := total + weight;
    END LOOP;
    RETURN total;
END
$$;

-- length::length: 'chars' (code points) or 'weighted' (x.com's rule: most emoji and CJK count 2,
-- every link 23). NULL for a rule it does not know.
CREATE OR REPLACE FUNCTION executor_text_length(body text, rule text DEFAULT 'weighted')
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT CASE rule
        WHEN 'chars' THEN char_length(body)
        WHEN 'weighted' THEN (
            SELECT COALESCE(SUM(
                CASE WHEN (piece ~ '^[Hh][Tt][Tt][Pp][Ss]://' AND octet_length(piece) > 10)
                       OR (piece ~ '^[Hh][Tt][Tt][Pp]://' AND octet_length(piece) > 9)
                       OR (piece ~ '^[Ww][Ww][Ww]\.' AND octet_length(piece) > 6)
                     THEN 23
                     ELSE executor_weighted_chars(piece)
                END), 0)::integer
            FROM (SELECT m[1] AS piece
                  FROM regexp_matches(body,
                      '([\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+'
                      '|[^\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+)',
                      'g') AS m) pieces)
    END
$$;

-- jobs::parse_target: a post URL (…/status/ID) or a bare id → the id; NULL when it is neither.
CREATE OR REPLACE FUNCTION executor_reply_target(target text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
    parts text[];
    id_form constant text := '^[A-Za-z0-9_-]{1,64}$';
BEGIN
    target := executor_trim(target);
    IF target LIKE 'http://%' OR target LIKE 'https://%' THEN
        parts := string_to_array(rtrim(regexp_replace(target, '[?#].*$', ''), '/'), '/');
        IF cardinality(parts) >= 2 AND parts[cardinality(parts) - 1] = 'status'
           AND parts[cardinality(parts)] ~ id_form THEN
            RETURN parts[cardinality(parts)];
        END IF;
        RETURN NULL;
    END IF;
    IF target ~ id_form THEN
        RETURN target;
    END IF;
    RETURN NULL;
END
$$;

-- Rust's str::trim: Unicode White_Space off both ends.
CREATE OR REPLACE FUNCTION executor_trim(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT regexp_replace(value,
        '^[\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+'
        '|[\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+$',
        '', 'g')
$$;

-- quote::quoted, as far as SQL can: in double quotes, escaped, cut after 200 characters with
-- the full size. (JSON's escapes; Rust's differ only for control characters other than \n, \r
-- and \t, and for invisible ones, which Rust escapes and JSON keeps.)
CREATE OR REPLACE FUNCTION executor_quoted(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT to_json(left(value, 200))::text
        || CASE WHEN char_length(value) > 200 THEN '…(' || octet_length(value) || ' bytes)' ELSE '' END
$$;

-- Raises the one error of a refused job: SQLSTATE 22023 (invalid_parameter_value), the message
-- `executor enqueue` prints, and the parameter at fault as the error's column name.
CREATE OR REPLACE FUNCTION executor_refuse(parameter text, message text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = message, COLUMN = parameter,
        HINT = 'nothing was queued; see docs/producers.md';
END
$$;

-- The producers' door: validates like `executor enqueue`, then adds the job, or returns the job
-- that already has `idempotency_key` (nothing is added, `created` is false). `max_length` and
-- `length_count` are the site's `max_chars` and `[text] count`: the defaults are x.com's.
CREATE OR REPLACE FUNCTION executor_enqueue(
    kind text,
    text text,
    reply_to text DEFAULT NULL,
    account text DEFAULT '',
    not_before timestamptz DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    max_length integer DEFAULT 280,
    length_count text DEFAULT 'weighted',
    OUT id bigint,
    OUT created boolean,
    OUT state text,
    OUT due_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
#variable_conflict use_variable
DECLARE
    job_kind constant text := executor_enqueue.kind;
    body constant text := COALESCE(executor_enqueue.text, '');
    target text := executor_enqueue.reply_to;
    job_account constant text := COALESCE(executor_enqueue.account, '');
    job_key constant text := executor_enqueue.idempotency_key;
    due constant timestamptz := GREATEST(COALESCE(executor_enqueue.not_before, now()), now());
    measured integer;
    describe text;
BEGIN
    -- The order of NewJob::validate, after the kind (as `enqueue bulk` reads a line).
    IF job_kind IS NULL OR job_kind NOT IN ('post', 'reply') THEN
        PERFORM executor_refuse('kind', format('unknown job kind %s (expected `post` or `reply`)',
            executor_quoted(COALESCE(job_kind, ''))));
    END IF;
    IF max_length IS NULL OR max_length < 1 THEN
        PERFORM executor_refuse('max_length', 'max_length must be at least 1');
    END IF;
    describe := CASE length_count
        WHEN 'chars' THEN 'characters'
        WHEN 'weighted' THEN 'weighted length: most emoji and CJK count 2, a link 23'
    END;
    IF describe IS NULL THEN
        PERFORM executor_refuse('length_count', format('length_count %s is not `chars` or `weighted`',
            executor_quoted(COALESCE(length_count, ''))));
    END IF;
    IF executor_text_is_blank(body) THEN
        PERFORM executor_refuse('text', 'the text is empty');
    END IF;
    measured := executor_text_length(body, length_count);
    IF measured > max_length THEN
        PERFORM executor_refuse('text', format(
            'the text is %s long as the site counts (%s); it allows at most %s',
            measured, describe, max_length));
    END IF;
    IF job_kind = 'post' AND target IS NOT NULL THEN
        PERFORM executor_refuse('reply_to', 'a post takes no reply target');
    END IF;
    IF job_kind = 'reply' AND target IS NULL THEN
        PERFORM executor_refuse('reply_to', 'a reply needs reply_to (the post to reply to)');
    END IF;
    IF job_kind = 'reply' THEN
        target := executor_reply_target(executor_enqueue.reply_to);
        IF target IS NULL THEN
            PERFORM executor_refuse('reply_to', format(
                'reply target %s is neither a post URL (…/status/ID) nor a post id',
                executor_quoted(executor_trim(executor_enqueue.reply_to))));
        END IF;
    END IF;
    -- Bytes, as the CLI counts them.
    IF job_key IS NOT NULL AND (job_key = '' OR octet_length(job_key) > 200) THEN
        PERFORM executor_refuse('idempotency_key', 'idempotency key must be 1 to 200 characters');
    END IF;
    IF octet_length(job_account) > 100 THEN
        PERFORM executor_refuse('account', 'account name must be 1 to 100 characters');
    END IF;

    INSERT INTO jobs AS j (kind, text, reply_to, account, idempotency_key, not_before, state,
                           max_attempts, created_at, updated_at)
    VALUES (job_kind, body, target, job_account, job_key, due, 'queued', 5, now(), now())
    ON CONFLICT ON CONSTRAINT jobs_idempotency_key_key DO NOTHING
    RETURNING j.id, j.state, j.not_before INTO id, state, due_at;
    IF FOUND THEN
        created := true;
        RETURN;
    END IF;
    -- The key is taken: the job that has it (committed: ON CONFLICT waited for its writer).
    SELECT j.id, j.state, j.not_before INTO id, state, due_at
        FROM jobs AS j WHERE j.idempotency_key = job_key;
    created := false;
END
$$;

REVOKE ALL ON FUNCTION executor_enqueue(text, text, text, text, timestamptz, text, integer, text)
    FROM PUBLIC;
