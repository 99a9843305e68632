-- Wake other processes only for jobs that are due now or within a second (the default idle poll
-- interval). A job inserted further in the future (a long delay, or an in-process hand-off that
-- stays invisible for its lease) used to wake every consumer of its queue for a claim that finds
-- nothing; those jobs are found by the consumer's own "sleep until the next due job" instead.
CREATE OR REPLACE FUNCTION bus_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  queues text;
BEGIN
  SELECT string_agg(DISTINCT queue, ',') INTO queues FROM inserted WHERE visible_at <= now() + interval '1 second';
  IF queues IS NOT NULL THEN
    -- NOTIFY payloads are capped at 8000 bytes; '*' asks every consumer to look.
    PERFORM pg_notify(bus_channel('bus', TG_TABLE_SCHEMA), CASE WHEN length(queues) > 7000 THEN '*' ELSE queues END);
  END IF;
  RETURN NULL;
END $$;
