-- A certificate lock names its holder, so only the holder refreshes or
-- releases it (proxies take locks through the control plane).
ALTER TABLE certmagic_locks ADD COLUMN holder text NOT NULL DEFAULT '';
