-- Events are numbered after they commit, by one serialized step that runs before every
-- read of the log, instead of by a lock that made writers commit one at a time. A row
-- gets an insertion id at once and its sequence number (seq) later; readers only see
-- numbered rows, and numbers only ever grow, so no reader misses an event.

ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD COLUMN id BIGSERIAL PRIMARY KEY;
ALTER TABLE events ALTER COLUMN seq DROP DEFAULT;
ALTER TABLE events ALTER COLUMN seq DROP NOT NULL;
CREATE UNIQUE INDEX events_seq ON events (seq);
CREATE INDEX events_unnumbered ON events (id) WHERE seq IS NULL;
