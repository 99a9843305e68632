-- Webhook signing secrets move to the secrets module (encrypted); flows keep only their id. SQL
-- cannot encrypt, so the clear values in `flows`, `flow_versions` and `webhook_flows` are moved
-- by a start-up step of the flows and webhooks modules. Copies that never needed the secret
-- lose it here: the execution engine's records of the flows it ran (created by 0031, so absent
-- on a new database, where there is nothing to remove) and dead-lettered flow events.
DO $$
BEGIN
  IF to_regclass('orchestrator_flows') IS NOT NULL THEN
    UPDATE orchestrator_flows SET flow = flow #- '{flowSettings,webhooks,secret}'
      WHERE flow->'flowSettings'->'webhooks' ? 'secret';
    UPDATE orchestrator_flow_versions SET flow = flow #- '{flowSettings,webhooks,secret}'
      WHERE flow->'flowSettings'->'webhooks' ? 'secret';
  END IF;
END $$;

-- Dead letters keep their payload as JSON text; only well-formed flow events are rewritten (a row
-- that does not parse as jsonb is left as it is rather than failing the migration).
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT id, payload FROM bus_dead_letters WHERE payload LIKE '%"webhooks"%' AND payload LIKE '%"secret"%' LOOP
    BEGIN
      UPDATE bus_dead_letters SET payload = (r.payload::jsonb #- '{payload,flowSettings,webhooks,secret}')::text WHERE id = r.id;
    EXCEPTION WHEN others THEN
      NULL;
    END;
  END LOOP;
END $$;
