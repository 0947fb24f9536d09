#!/bin/sh
# The streaming function's handler. The Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap, from
# its layer) runs this instead of the Python runtime's own loop; it starts the web server the adapter
# forwards each invocation to.
cd "${LAMBDA_TASK_ROOT:-$(dirname "$0")/../..}" || exit 1
exec python3 -m chalicelib.stream_host
