"""Reading records written before platforms (schema 1), on every read.

Before platforms there was one admin role, ``platform_admin``, installation-wide
(its keys name no tenant). That role is now ``root_admin``; ``platform_admin``
now means the admin of one white-label platform. A schema-1 key record saying
``platform_admin`` is therefore read as ``root_admin``; new records carry
``schema: 2`` so the two are never confused. Schema-1 tenants are organizers
directly under the root admin (``platform_id`` ""), which their defaults
already say. Nothing is rewritten in Redis: old and new records are read side
by side, and a record written again (a revocation) is written as schema 2.
tests/holds/platform/test_migration.py reads records as the previous release
wrote them (fixtures/v1_records.json).
"""

from __future__ import annotations

import msgspec

from holds.records import RECORD_SCHEMA, ApiKeyRecord, TenantRecord


def upgrade_key(record: ApiKeyRecord) -> ApiKeyRecord:
    if record.schema >= RECORD_SCHEMA:
        return record
    role = "root_admin" if record.role == "platform_admin" else record.role
    return msgspec.structs.replace(record, role=role, schema=RECORD_SCHEMA)


def upgrade_tenant(record: TenantRecord) -> TenantRecord:
    if record.schema >= RECORD_SCHEMA:
        return record
    return msgspec.structs.replace(record, schema=RECORD_SCHEMA)
