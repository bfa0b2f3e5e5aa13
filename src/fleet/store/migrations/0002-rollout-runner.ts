// What the rollout runner keeps so that a restarted server resumes a rollout where it was: each
// node's power settings, the rollout's wave and the last event it applied, and per rollout node the
// time it entered its state (its timeout counts from there) and when it was powered on (the stagger
// counts from there; a node with a power-on time is never powered on again by that rollout).
export const version = 2;
export const name = "rollout-runner";
export const sql = `
-- How to power a node on: a PowerSettings document (src/fleet/power). It may hold a BMC's
-- password, so it is never copied into an event or a log.
CREATE TABLE node_power (
  node_id    bigint PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
  settings   jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE rollouts ADD COLUMN wave integer NOT NULL DEFAULT 0;
-- The sequence number of the last event the runner applied to this rollout's nodes.
ALTER TABLE rollouts ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX rollouts_status ON rollouts (status);

-- A node waits without a wave; it joins one when the rollout powers it on.
ALTER TABLE rollout_nodes ALTER COLUMN wave DROP NOT NULL;
ALTER TABLE rollout_nodes ADD COLUMN state_since timestamptz NOT NULL DEFAULT now();
ALTER TABLE rollout_nodes ADD COLUMN powered_on_at timestamptz;
`;
