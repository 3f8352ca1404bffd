-- A worker's frames are signed with sha256(raw key); until now that very
-- value was stored as api_key_hash, so reading the table was enough to sign
-- frames. From now on api_key_hash holds a one-way derivation of it (for
-- lookup at registration) and the key itself is kept sealed under the
-- master secret in mac_key_sealed. SQL cannot encrypt with the master
-- secret: existing keys wait in mac_key_plain until the control plane's
-- next start seals them and clears the column (workers.SealKeys), so
-- existing workers keep their keys.
ALTER TABLE workers ADD COLUMN mac_key_sealed text, ADD COLUMN mac_key_plain bytea;
UPDATE workers SET mac_key_plain = api_key_hash,
    api_key_hash = sha256('wisehosting/worker-lookup/v1'::bytea || '\x00'::bytea || api_key_hash)
    WHERE length(api_key_hash) = 32;
