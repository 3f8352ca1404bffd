ALTER TABLE apps DROP COLUMN build_command, DROP COLUMN start_command;
