DROP TABLE IF EXISTS auth_failures;
