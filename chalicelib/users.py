"""Users of one tenant and their roles: owner > admin > member.

Members see only themselves; admins manage members; only an owner grants
admin or owner. The tenant keeps a count of its owners, changed in the same
transaction as any owner's demotion or removal, so two concurrent requests
can never leave a tenant without an owner.
"""
from __future__ import annotations

from typing import Any, List, Mapping

from pynamodb.exceptions import TransactWriteError

from chalicelib import keys, validation
from chalicelib.errors import Conflict, Forbidden, NotFound
from chalicelib.identity.passwords import hash_password
from chalicelib.ids import new_id
from chalicelib.models import Tenant, User, UserEmail, tenant_pk
from chalicelib.periods import isoformat, utcnow
from chalicelib.store import cancelled_because, transaction
from chalicelib.tenancy import ROLES, TenantContext
from chalicelib.tenants import validate_password


def view(user: User) -> dict:
    return {"user_id": user.user_id, "email": user.email, "role": user.role,
            "status": user.status, "created_at": isoformat(user.created_at)}


def _get(tenant_id: str, user_id: str) -> User:
    try:
        return User.get(tenant_pk(tenant_id), User.sk_for(user_id), consistent_read=True)
    except User.DoesNotExist:
        raise NotFound("User not found.") from None


def list_users(tenant_id: str, ctx: TenantContext) -> List[dict]:
    if not ctx.at_least("admin"):
        if not ctx.is_user:
            return []
        return [view(_get(tenant_id, ctx.principal_id))]
    users = User.query(tenant_pk(tenant_id), User.sk.startswith("USER#"))
    return [view(u) for u in users]


def get_user(tenant_id: str, ctx: TenantContext, user_id: str) -> dict:
    if not ctx.at_least("admin") and user_id != ctx.principal_id:
        raise Forbidden("Members can only read their own user.", code="insufficient_role")
    return view(_get(tenant_id, user_id))


def _may_grant(ctx: TenantContext, role: str) -> None:
    ctx.require("admin")
    if role in ("admin", "owner") and not ctx.at_least("owner"):
        raise Forbidden("Only an owner can grant the admin or owner role.", code="insufficient_role")


def _may_manage(ctx: TenantContext, target: User) -> None:
    ctx.require("admin")
    if target.role in ("admin", "owner") and not ctx.at_least("owner"):
        raise Forbidden("Only an owner can change or remove an admin or owner.", code="insufficient_role")


def create_user(tenant_id: str, ctx: TenantContext, body: Mapping[str, Any]) -> dict:
    validation.fields(body, {"email", "password", "role"}, required=("email", "password"))
    email = validation.email(body)
    password = validate_password(body)
    role = validation.one_of(body, "role", ROLES) if "role" in body else "member"
    _may_grant(ctx, role)
    user_id = new_id("usr")
    pk = tenant_pk(tenant_id)
    user = User(pk, User.sk_for(user_id), user_id=user_id, email=email, password_hash=hash_password(password),
                role=role, status="active", created_at=utcnow())
    try:
        with transaction() as tx:
            tx.save(UserEmail(pk, UserEmail.sk_for(email), user_id=user_id), condition=UserEmail.pk.does_not_exist())
            tx.save(user, condition=User.pk.does_not_exist())
            if role == "owner":
                tx.update(Tenant(pk, Tenant.SK), actions=[Tenant.owner_count.add(1)], condition=Tenant.pk.exists())
    except TransactWriteError as error:
        if cancelled_because(error, 0):
            raise Conflict("A user with this email already exists in this tenant.", code="email_taken") from None
        raise
    return view(user)


def change_role(tenant_id: str, ctx: TenantContext, user_id: str, body: Mapping[str, Any]) -> dict:
    validation.fields(body, {"role"}, required=("role",))
    role = validation.one_of(body, "role", ROLES)
    target = _get(tenant_id, user_id)
    _may_manage(ctx, target)
    _may_grant(ctx, role)
    if role == target.role:
        return view(target)
    pk = tenant_pk(tenant_id)
    owner_delta = (role == "owner") - (target.role == "owner")
    try:
        with transaction() as tx:
            tx.update(target, actions=[User.role.set(role)], condition=User.role == target.role)
            if owner_delta:
                _owner_count(tx, pk, owner_delta)
    except TransactWriteError as error:
        _explain(error)
    target.role = role
    return view(target)


def delete_user(tenant_id: str, ctx: TenantContext, user_id: str, revoke_keys: bool = False) -> None:
    """Remove a user; with `revoke_keys`, first revoke the API keys they created (else those keep working:
    keys belong to the tenant). Revoking first means a failure leaves the user there to remove again."""
    target = _get(tenant_id, user_id)
    _may_manage(ctx, target)
    if revoke_keys:
        keys.revoke_keys_created_by(tenant_id, user_id)
    pk = tenant_pk(tenant_id)
    try:
        with transaction() as tx:
            tx.delete(target, condition=User.role == target.role)
            tx.delete(UserEmail(pk, UserEmail.sk_for(target.email)))
            if target.role == "owner":
                _owner_count(tx, pk, -1)
    except TransactWriteError as error:
        _explain(error)


def _owner_count(tx: Any, pk: str, delta: int) -> None:
    condition = Tenant.owner_count > 1 if delta < 0 else Tenant.pk.exists()
    tx.update(Tenant(pk, Tenant.SK), actions=[Tenant.owner_count.add(delta)], condition=condition)


def _explain(error: TransactWriteError) -> None:
    if cancelled_because(error, 0):
        raise Conflict("The user changed while this request ran; read it again.", code="conflict") from None
    reasons = error.cancellation_reasons or []
    if any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons):
        raise Conflict("A tenant must keep at least one owner.", code="last_owner") from None
    raise error
