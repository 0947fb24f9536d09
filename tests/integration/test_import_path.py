"""The authorizer's Lambda imports app.py too: the anthropic SDK and the X-Ray SDK must stay off that path."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code):
    # The child gets os.environ as this process sees it, passed explicitly: an environment changed through
    # os.environ (monkeypatch) reaches it even where an earlier test left os.environ detached from the C one.
    result = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(','.join(sorted(sys.modules)))"],
                            cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    return set(result.stdout.strip().split(","))


def test_importing_the_app_does_not_import_the_anthropic_sdk():
    loaded = modules_after("import app")
    assert "anthropic" not in loaded and "httpx2" not in loaded and "pydantic" not in loaded
    assert "aws_xray_sdk" not in loaded  # the Tracer is built on the API handler's first sampled request, never at import
    assert "app" in loaded and "chalicelib.ai.gateway" in loaded


def test_resolving_identity_does_not_import_the_anthropic_sdk():
    loaded = modules_after("import chalicelib.identity.resolve")
    assert "anthropic" not in loaded and "aws_xray_sdk" not in loaded


def test_an_authorizer_s_dynamodb_call_in_a_sampled_invocation_does_not_import_the_xray_sdk(monkeypatch, moto_server):
    """The authorizers share the table's client, whose calls are traced only where a request built the Tracer."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server[0])  # the session's moto, whatever another test left
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    for marker in ("POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "CHALICE_LOCAL"):  # a deployed Lambda has none
        monkeypatch.delenv(marker, raising=False)
    loaded = modules_after("import app, os\nfrom chalicelib import observability\nfrom chalicelib.models import "
                           "table_connection\nassert observability.sampled() and observability.tracing_enabled(), "
                           "{k: v for k, v in os.environ.items() if k.startswith(('_X_AMZN', 'LAMBDA', 'POWERTOOLS', "
                           "'AWS_SAM', 'CHALICE'))}\n"
                           "table_connection().connection.client.describe_limits()")
    assert "aws_xray_sdk" not in loaded and "botocore.client" in loaded
