DROP TABLE IF EXISTS oauth_states;
