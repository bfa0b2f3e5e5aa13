// The fleet's first schema. PostgreSQL 15 (the region's server) and PGlite (PostgreSQL 18 in WASM)
// both run it, so it keeps to what 15 has. Times are timestamptz, ids are bigint identities, free
// form documents (reports, parameters, event bodies) are jsonb.
export const version = 1;
export const name = "initial";
export const sql = `
-- A machine. Identity is the DMI system UUID and serial (either may be unknown: a placeholder
-- value is stored as NULL); MACs live in node_macs so that a NIC swap keeps the node.
CREATE TABLE nodes (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  uuid        text,
  serial      text,
  asset_tag   text,
  product     text,
  rack        text,
  state       text NOT NULL DEFAULT 'discovered',
  state_since timestamptz NOT NULL DEFAULT now(),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_uuid ON nodes (uuid);
CREATE INDEX nodes_serial ON nodes (serial);
CREATE INDEX nodes_rack_state ON nodes (rack, state);

-- A MAC belongs to one node at a time; a NIC moved to another machine moves its row.
CREATE TABLE node_macs (
  mac        text PRIMARY KEY,
  node_id    bigint NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  first_seen timestamptz NOT NULL DEFAULT now(),
  last_seen  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX node_macs_node ON node_macs (node_id);

-- What identity resolution could not settle on its own (a changed UUID, a UUID two machines share):
-- kept for the operator, never merged silently.
CREATE TABLE identity_flags (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  node_id    bigint NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  other_node bigint REFERENCES nodes (id) ON DELETE SET NULL,
  kind       text NOT NULL,
  detail     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz
);
CREATE INDEX identity_flags_node ON identity_flags (node_id);

-- The node's detect reports as posted (newest is the one answers are validated against).
CREATE TABLE reports (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  node_id     bigint NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  received_at timestamptz NOT NULL DEFAULT now(),
  report      jsonb NOT NULL
);
CREATE INDEX reports_node ON reports (node_id, id);

-- Hold before destroy: a node is installed only when approved and without an open hold.
CREATE TABLE approvals (
  node_id     bigint PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
  approved_at timestamptz NOT NULL DEFAULT now(),
  approved_by text NOT NULL,
  reason      text
);
CREATE TABLE holds (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  node_id     bigint NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  source      text NOT NULL CHECK (source IN ('operator', 'identity', 'answer', 'rollout')),
  reason      text NOT NULL,
  held_by     text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  released_at timestamptz,
  released_by text
);
CREATE INDEX holds_open ON holds (node_id) WHERE released_at IS NULL;

-- Which answer layers a node gets, in merge order (site, rack, node), and the rule that chose them.
CREATE TABLE assignments (
  node_id     bigint NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  position    integer NOT NULL,
  layer       text NOT NULL,
  rule        text,
  assigned_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, position)
);

-- A rollout, its waves, and where each of its nodes stands in it.
CREATE TABLE rollouts (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL,
  status     text NOT NULL,
  params     jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE rollout_waves (
  rollout_id bigint NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  wave       integer NOT NULL,
  status     text NOT NULL,
  started_at timestamptz,
  ended_at   timestamptz,
  PRIMARY KEY (rollout_id, wave)
);
CREATE TABLE rollout_nodes (
  rollout_id bigint NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  node_id    bigint NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  wave       integer NOT NULL,
  state      text NOT NULL,
  detail     text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rollout_id, node_id)
);

-- One append-only stream of everything that happened; seq orders it. mac and node_id say whose
-- event it is (a node seen only by MAC so far has no node_id yet); state is the state a node
-- entered, when the event moved it.
CREATE TABLE events (
  seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time    timestamptz NOT NULL,
  source  text,
  node_id bigint REFERENCES nodes (id) ON DELETE SET NULL,
  mac     text,
  type    text NOT NULL,
  state   text,
  body    jsonb NOT NULL
);
CREATE INDEX events_node ON events (node_id, seq);

-- The states each node went through (from the events that moved it).
CREATE TABLE timelines (
  node_id    bigint NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  event_seq  bigint NOT NULL,
  state      text NOT NULL,
  entered_at timestamptz NOT NULL,
  PRIMARY KEY (node_id, event_seq)
);

-- DHCP leases, per L2 segment (one kvmstrap serve each).
CREATE TABLE leases (
  segment    text NOT NULL,
  mac        text NOT NULL,
  address    text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (segment, mac),
  UNIQUE (segment, address)
);

-- The stream is append-only for everyone, not only for this code.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'events are append-only';
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION events_append_only();

-- One notification per inserting statement (not per row): "min max" of the seqs it added,
-- delivered at commit, to every listening process.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE lo bigint; hi bigint;
BEGIN
  SELECT min(seq), max(seq) INTO lo, hi FROM added;
  IF lo IS NOT NULL THEN
    PERFORM pg_notify('kvmstrap_events', lo || ' ' || hi);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
`;
