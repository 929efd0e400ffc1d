"""Moved to :mod:`holds.platform.tenants` (platform and account records live in
``holds/platform/``, docs/architecture.md); kept so old imports keep working."""

from holds.platform.tenants import KEY_PREFIX, TenantStore

__all__ = ["KEY_PREFIX", "TenantStore"]
