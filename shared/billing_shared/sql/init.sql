-- One schema per service in the current database, owned by a login role of the same name.
-- Idempotent: run by the postgres image on first start (docker-entrypoint-initdb.d) and by the local
-- bootstrap against any database (`psql -v ON_ERROR_STOP=1 -d <db> -f init.sql`), as a superuser.
--
-- Roles are cluster-wide and are created with password = name only when missing; an existing role's
-- password is never touched, so production secrets set with ALTER ROLE survive a re-run.
-- A new schema grants nothing to PUBLIC, so each role can reach its own schema and no other:
-- services share nothing but the broker.

-- "schema already exists, skipping" on every re-run is noise, not news.
SET client_min_messages = warning;

DO $$
DECLARE
    service text;
BEGIN
    -- Roles and their settings are cluster-wide: two runs at once, on two databases (test sessions side by
    -- side), would update the same catalog rows ("tuple concurrently updated"). A lock on this shared
    -- catalog is cluster-wide too, and self-exclusive: runs take turns. Logins only read it, unhindered.
    LOCK TABLE pg_catalog.pg_db_role_setting IN SHARE ROW EXCLUSIVE MODE;
    FOREACH service IN ARRAY ARRAY['customer', 'payment', 'subscription', 'invoice', 'dunning', 'notifier']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = service) THEN
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', service, service);
        END IF;
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', service, service);
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', service, service);
        -- Unqualified names (Alembic's version table included) land in the service's own schema.
        EXECUTE format('ALTER ROLE %I SET search_path = %I', service, service);
        EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), service);
        -- Harmless when nothing was granted; undoes any grant a hand-made schema might carry.
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', service);
    END LOOP;
END
$$;

-- Nobody parks tables in public by accident (the default before Postgres 15).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
