"""Notifications: the scheduler, webhooks, e-mail and subscriptions (after commit)."""
