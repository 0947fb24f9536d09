"""Tenants' own Anthropic keys (BYOK), encrypted with KMS under the tenant's id.

The tenant id is the KMS encryption context, so a ciphertext copied onto
another tenant's item cannot be decrypted there. Plaintext keys exist only in
memory, never in a log line, response, exception or stored item.
"""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.aws import client
from chalicelib.errors import ConfigurationError
from chalicelib.settings import get_settings


class TenantKeyUnavailable(ConfigurationError):
    status = 500
    code = "tenant_api_key_unavailable"

    def __init__(self) -> None:
        super().__init__("The tenant's own Anthropic key cannot be read. Set it again, or remove it to use "
                         "the platform's keys.")


class TenantKeyVault:
    def __init__(self, kms: Optional[Any] = None) -> None:
        self._kms = kms

    @property
    def kms(self) -> Any:
        return self._kms or client("kms")

    def encrypt(self, tenant_id: str, api_key: str) -> bytes:
        response = self.kms.encrypt(KeyId=get_settings().kms_key_id, Plaintext=api_key.encode(),
                                    EncryptionContext={"tenant_id": tenant_id})
        return response["CiphertextBlob"]

    def decrypt(self, tenant_id: str, ciphertext: bytes) -> str:
        try:
            response = self.kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext={"tenant_id": tenant_id})
            return response["Plaintext"].decode()
        except Exception:
            raise TenantKeyUnavailable() from None
