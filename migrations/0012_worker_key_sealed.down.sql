-- Restores api_key_hash for keys not sealed yet. Keys already sealed
-- cannot be opened in SQL: those workers need a new key (worker add) after
-- going back.
UPDATE workers SET api_key_hash = mac_key_plain WHERE mac_key_plain IS NOT NULL;
ALTER TABLE workers DROP COLUMN mac_key_sealed, DROP COLUMN mac_key_plain;
