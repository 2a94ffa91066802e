-- A counter that moves with every write to backends, so each `serve` mirrors changes made by
-- others (CLI commands, the leader's autoscaler, another proxy) by reading one row a poll instead
-- of the whole table. (The same migration exists for PostgreSQL, where SQLite's data_version has
-- no equivalent.)
CREATE TABLE backend_changes (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  counter   INTEGER NOT NULL
);
INSERT INTO backend_changes (singleton, counter) VALUES (1, 0);
CREATE TRIGGER backends_changed_insert AFTER INSERT ON backends
  BEGIN UPDATE backend_changes SET counter = counter + 1 WHERE singleton = 1; END;
CREATE TRIGGER backends_changed_update AFTER UPDATE ON backends
  BEGIN UPDATE backend_changes SET counter = counter + 1 WHERE singleton = 1; END;
CREATE TRIGGER backends_changed_delete AFTER DELETE ON backends
  BEGIN UPDATE backend_changes SET counter = counter + 1 WHERE singleton = 1; END;
