"use strict";
// Operations views: runtime logs, usage charts, webhooks, alerts, workers, team members.
