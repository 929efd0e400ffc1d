"""Platform and account records (not inventory): platforms, organizers (tenants),
API keys and roles, plans, the audit log. See docs/platform.md."""
