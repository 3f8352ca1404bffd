DROP TABLE IF EXISTS git_deliveries, audit_events, runtime_logs, usage_samples, alerts, alert_rules,
    webhook_deliveries, webhooks, certmagic_locks, certmagic_data, certificates, routes, domains,
    jobs, env_vars, deployment_logs, deployments, apps, workers, api_tokens, sessions, memberships,
    teams, oauth_identities, users CASCADE;
