"""What `dev/stack/moto_server.py --deploy-gaps` adds to moto so that `make deploy-dev` can run against it.

moto 5.2's API Gateway imports only OpenAPI 3 documents, and chalice sends Swagger 2.0 (ImportRestApi on
the first deploy, PutRestApi with mode=overwrite on the next). `install()` makes moto load a Swagger 2.0
document the way it loads OpenAPI 3 (resources, methods, Lambda integrations), and adds what moto's loader
leaves out for either version: the custom authorizers of `securityDefinitions` and each method's authorizer
from its `security`. Nothing is changed for a document moto already accepts, except those authorizers.
Each gap is named in `GAPS`; tests/integration/test_chalice_deploy.py runs the real CLI against this.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Dict

GAPS = {
    "ImportRestApi/PutRestApi Swagger 2.0": "moto answers InvalidOpenApiDocVersionException for a Swagger 2.0 "
                                            "body (chalice's); loaded here as moto loads OpenAPI 3",
    "ImportRestApi info.description": "moto requires info.description (a KeyError, HTTP 500); chalice writes "
                                      "none: taken as empty",
    "authorizers from the body": "moto's loader ignores securityDefinitions' x-amazon-apigateway-authorizer "
                                 "and each operation's security: created and attached here",
    "KMS key policy from CloudFormation": "moto keeps an AWS::KMS::Key's KeyPolicy as the template's object, and "
                                          "every call on the key then fails (json.loads of a dict, HTTP 500): "
                                          "stored as JSON text, as CreateKey stores it",
    "AWS::SecretsManager::Secret": "moto's CloudFormation has no model for it (the stack completes without the "
                                   "secret): created here through Secrets Manager, GenerateSecretString included",
    "Lambda without Docker": "moto runs Lambda code only in Docker (absent here): the rehearsal checks what "
                             "was created, not an invocation",
}


def _as_openapi3(document: Dict[str, Any]) -> Dict[str, Any]:
    """What moto's loader reads (paths, methods, x-amazon-apigateway-integration) under the version it takes."""
    document = copy.deepcopy(document)
    if "swagger" in document:
        del document["swagger"]
        document["openapi"] = "3.0.1"
    document.setdefault("info", {}).setdefault("description", "")
    return document


def _attach_authorizers(backend: Any, api_id: str, document: Dict[str, Any]) -> None:
    api = backend.get_rest_api(api_id)
    by_name = {authorizer.name: authorizer.id for authorizer in api.authorizers.values()}
    for name, scheme in document.get("securityDefinitions", {}).items():
        custom = scheme.get("x-amazon-apigateway-authorizer")
        if not custom or name in by_name:
            continue
        kind = custom.get("type", "token").upper()
        header = f"method.request.header.{scheme['name']}" if scheme.get("in") == "header" else None
        by_name[name] = backend.create_authorizer(
            api_id, name, kind, auth_type=scheme.get("x-amazon-apigateway-authtype"),
            authorizer_uri=custom.get("authorizerUri"), identity_source=custom.get("identitySource", header),
            authorizer_result_ttl=custom.get("authorizerResultTtlInSeconds")).id
    for path, item in document.get("paths", {}).items():
        resource = api.get_resource_for_path(path)
        for method, operation in item.items():
            if not isinstance(operation, dict) or method.upper() not in resource.resource_methods:
                continue
            for requirement in operation.get("security") or []:
                for scheme_name in requirement:
                    if scheme_name in by_name:
                        found = resource.resource_methods[method.upper()]
                        found.authorization_type, found.authorizer_id = "CUSTOM", by_name[scheme_name]


def install() -> None:
    """Every workaround of GAPS; safe to call twice."""
    _swagger2_rest_apis()
    _kms_key_policy_as_text()
    _secrets_in_cloudformation()


def _secrets_in_cloudformation() -> None:
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel
    from moto.secretsmanager.models import secretsmanager_backends

    if "AWS::SecretsManager::Secret" in parsing.get_model_map():
        return

    class CloudFormationSecret(CloudFormationModel):
        __module__ = "moto.secretsmanager.models"  # moto's model registry reads the service from the module

        def __init__(self, arn: str) -> None:
            self.physical_resource_id = arn  # what Ref gives, as in AWS

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SecretsManager::Secret"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                            region_name: str, **kwargs: Any) -> "CloudFormationSecret":
            backend = secretsmanager_backends[account_id][region_name]
            properties = cloudformation_json["Properties"]
            value, generate = properties.get("SecretString"), properties.get("GenerateSecretString")
            if value is None and generate is not None:
                value = json.loads(backend.get_random_password(
                    password_length=int(generate.get("PasswordLength", 32)),
                    exclude_characters=generate.get("ExcludeCharacters", ""),
                    exclude_numbers=bool(generate.get("ExcludeNumbers")),
                    exclude_punctuation=bool(generate.get("ExcludePunctuation")),
                    exclude_uppercase=bool(generate.get("ExcludeUppercase")),
                    exclude_lowercase=bool(generate.get("ExcludeLowercase")),
                    include_space=bool(generate.get("IncludeSpace")),
                    require_each_included_type=bool(generate.get("RequireEachIncludedType", True))))["RandomPassword"]
            name = properties.get("Name", resource_name)
            backend.create_secret(name=name, secret_string=value, secret_binary=None,
                                  description=properties.get("Description"), tags=properties.get("Tags"),
                                  kms_key_id=properties.get("KmsKeyId"), client_request_token=None,
                                  replica_regions=[], force_overwrite=False)
            return cls(backend.describe_secret(name).arn)

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


def _kms_key_policy_as_text() -> None:
    from moto.kms.models import Key

    if getattr(Key, "_tessera_policy_text", False):
        return
    create = Key.create_from_cloudformation_json.__func__

    def created(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
                **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        if isinstance(properties.get("KeyPolicy"), dict):
            properties = {**properties, "KeyPolicy": json.dumps(properties["KeyPolicy"])}
            cloudformation_json = {**cloudformation_json, "Properties": properties}
        return create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Key.create_from_cloudformation_json = classmethod(created)
    Key._tessera_policy_text = True


def _swagger2_rest_apis() -> None:
    from moto.apigateway.models import APIGatewayBackend

    if getattr(APIGatewayBackend, "_tessera_swagger2", False):
        return
    import_rest_api, put_rest_api = APIGatewayBackend.import_rest_api, APIGatewayBackend.put_rest_api

    def imported(self: Any, api_doc: Dict[str, Any], fail_on_warnings: bool) -> Any:
        api = import_rest_api(self, _as_openapi3(api_doc), fail_on_warnings)
        _attach_authorizers(self, api.id, api_doc)
        return api

    def put(self: Any, function_id: str, api_doc: Dict[str, Any], fail_on_warnings: bool, mode: str = "merge") -> Any:
        if mode == "overwrite":  # the methods' authorizers go with the resources; the authorizers themselves stay
            self.get_rest_api(function_id).authorizers.clear()
        api = put_rest_api(self, function_id, _as_openapi3(api_doc), fail_on_warnings, mode)
        _attach_authorizers(self, function_id, api_doc)
        return api

    APIGatewayBackend.import_rest_api = imported
    APIGatewayBackend.put_rest_api = put
    APIGatewayBackend._tessera_swagger2 = True
