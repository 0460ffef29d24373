"""Schedules (B10): cron definitions that push jobs, once per time across nodes."""
