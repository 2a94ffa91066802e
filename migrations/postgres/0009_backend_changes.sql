-- As migrations/sqlite/0009_backend_changes.sql: a counter that moves with every write to
-- backends, read by every proxy's change poll (one row instead of the table).
CREATE TABLE backend_changes (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  counter   BIGINT  NOT NULL
);
INSERT INTO backend_changes (singleton, counter) VALUES (1, 0);
CREATE FUNCTION doproxy_backends_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE backend_changes SET counter = counter + 1 WHERE singleton = 1;
  RETURN NULL;
END $$;
CREATE TRIGGER backends_changed AFTER INSERT OR UPDATE OR DELETE ON backends
  FOR EACH STATEMENT EXECUTE FUNCTION doproxy_backends_changed();
