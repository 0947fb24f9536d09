"""The tenant context every request runs in, built once from the authorizer's output."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from chalicelib.errors import Forbidden, Unauthorized

ROLE_RANK = {"member": 1, "admin": 2, "owner": 3}
ROLES = tuple(ROLE_RANK)


@dataclass(frozen=True)
class TenantContext:
    tenant_id: str
    principal_id: str
    principal_type: str  # "user" or "api_key"
    role: str
    display: str  # the user's email or the key's name
    slug: str = ""
    plan: str = ""  # as the authorizer saw it (cached up to 30 s): for logs and metrics, never for decisions

    @classmethod
    def from_authorizer(cls, context: Optional[Mapping[str, object]]) -> "TenantContext":
        """API Gateway hands the authorizer's context to the route as strings."""
        context = context or {}
        tenant_id = str(context.get("tenant_id") or "")
        principal_id = str(context.get("principal_id") or "")
        if not tenant_id or not principal_id:
            raise Unauthorized("The request carries no tenant credential.")
        return cls(
            tenant_id=tenant_id,
            principal_id=principal_id,
            principal_type=str(context.get("principal_type") or "user"),
            role=str(context.get("role") or "member"),
            display=str(context.get("display") or ""),
            slug=str(context.get("slug") or ""),
            plan=str(context.get("plan") or ""),
        )

    def to_authorizer(self) -> dict:
        return {
            "tenant_id": self.tenant_id,
            "principal_id": self.principal_id,
            "principal_type": self.principal_type,
            "role": self.role,
            "display": self.display,
            "slug": self.slug,
            "plan": self.plan,
        }

    @property
    def is_user(self) -> bool:
        return self.principal_type == "user"

    def at_least(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]

    def check_hints(self, tenant_headers: Sequence[str], host_slug: Optional[str]) -> None:
        """`X-Tenant-ID` or a tenant subdomain may confirm the credential's tenant, never choose it. Every
        copy of the header must name it: a later proxy or log may read a different copy than we do."""
        if any(value.strip() != self.tenant_id for value in tenant_headers):
            raise Forbidden("X-Tenant-ID does not match the credential's tenant.", code="tenant_mismatch")
        if host_slug is not None and host_slug != self.slug:
            raise Forbidden("The host's tenant does not match the credential's tenant.", code="tenant_mismatch")

    def require(self, role: str) -> None:
        if not self.at_least(role):
            raise Forbidden(f"This action needs the {role} role or higher.", code="insufficient_role")
