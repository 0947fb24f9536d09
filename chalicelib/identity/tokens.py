"""Signed access tokens (PyJWT, HS256 pinned) for tenant users and platform operators.

Tenant and operator tokens use different keyrings, issuers and audiences, so
neither can stand in for the other. Every token names its signing key (`kid`)
so the secret can be rotated: sign with the active key, verify with any.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict

from chalicelib.errors import Unauthorized
from chalicelib.secrets import Keyring, jwt_keyring, operator_keyring
from chalicelib.settings import get_settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


@dataclass(frozen=True)
class Audience:
    issuer: Callable[[], str]
    audience: Callable[[], str]
    keyring: Callable[[], Keyring]


TENANT = Audience(lambda: get_settings().jwt_issuer, lambda: get_settings().jwt_audience, jwt_keyring)
OPERATOR = Audience(lambda: get_settings().jwt_issuer + "-operators", lambda: "tessera-admin", operator_keyring)


def _issue(kind: Audience, subject: str, claims: Dict[str, str], ttl_seconds: int) -> str:
    import jwt

    keyring = kind.keyring()
    now = int(time.time())
    payload = {"iss": kind.issuer(), "aud": kind.audience(), "sub": subject,
               "iat": now, "exp": now + ttl_seconds, **claims}
    return jwt.encode(payload, keyring.signing_secret, algorithm=ALGORITHM, headers={"kid": keyring.active})


def _verify(kind: Audience, token: str) -> Dict[str, object]:
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("The token is not valid.")
        secret = kind.keyring().keys.get(str(header.get("kid")))
        if secret is None:
            raise Unauthorized("The token is not valid.")
        return jwt.decode(token, secret, algorithms=[ALGORITHM], audience=kind.audience(),
                          issuer=kind.issuer(), options={"require": REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired.", code="token_expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("The token is not valid.") from None


def issue_access_token(tenant_id: str, user_id: str, role: str) -> tuple[str, int]:
    ttl = get_settings().jwt_ttl_seconds
    return _issue(TENANT, user_id, {"tid": tenant_id, "role": role}, ttl), ttl


def verify_access_token(token: str) -> Dict[str, object]:
    claims = _verify(TENANT, token)
    if not claims.get("tid"):
        raise Unauthorized("The token is not valid.")
    return claims


def issue_operator_token(operator_id: str, ttl_seconds: int = 12 * 3600) -> str:
    return _issue(OPERATOR, operator_id, {"scope": "operator"}, ttl_seconds)


def verify_operator_token(token: str) -> Dict[str, object]:
    claims = _verify(OPERATOR, token)
    if claims.get("scope") != "operator":
        raise Unauthorized("The token is not valid.")
    return claims
