"""An s3:// store's environment, checked in about a second and explained in one line.

Without this, missing credentials surfaced as a 64-303 line `NoCredentialsError`, an unreachable
endpoint as 17 s of retries and a traceback, and an endpoint that answers 404 (a wrong bucket, or a
web server that is not S3) as an empty store. `check_store` asks the bucket once (HEAD, small connect
timeout, no retries) before a command starts work; `config_error` turns the same failures met later
(deep in a flow) into the same lines. Both name the setting to fix; neither prints credentials.
"""

from __future__ import annotations

import os

from doodleflow.infra.errors import ConfigError

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
CREDENTIALS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"


def endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _where() -> str:
    ep = endpoint()
    return f"the S3 endpoint {ep} (AWS_ENDPOINT_URL)" if ep else "AWS S3 (no AWS_ENDPOINT_URL set)"


def check_store(uri: str) -> None:
    """ConfigError unless `uri`'s bucket answers with these credentials (no-op for a local store)."""
    if not uri.startswith("s3://"):
        return
    import boto3
    from botocore.config import Config

    bucket = uri[len("s3://") :].split("/", 1)[0]
    cfg = Config(
        connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, retries={"total_max_attempts": 1}
    )
    try:
        boto3.session.Session().client("s3", endpoint_url=endpoint(), config=cfg).head_bucket(Bucket=bucket)
    except Exception as e:
        err = config_error(e, uri)
        if err is None:
            raise
        raise err from None


def config_error(exc: BaseException, uri: str | None = None) -> ConfigError | None:
    """The one-line ConfigError for an S3 environment failure anywhere in `exc`'s chain, else None."""
    from botocore import exceptions as bx

    what = uri or "the s3:// store"
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return ConfigError(f"{what}: no AWS credentials found; {CREDENTIALS}")
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ProxyConnectionError):
            return ConfigError(f"{what}: cannot reach {_where()}; check AWS_ENDPOINT_URL and the network")
        if isinstance(exc, bx.ClientError):
            return _client_error(exc, what)
        exc = exc.__cause__ or exc.__context__
    return None


def _client_error(exc, what: str) -> ConfigError | None:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("404", "NoSuchBucket") or status == 404:
        return ConfigError(
            f"{what}: no such bucket at {_where()}: check the bucket in --store / DOODLEFLOW_STORE, "
            "or AWS_ENDPOINT_URL if the endpoint is not the S3 service holding it"
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        return ConfigError(f"{what}: the AWS credentials were refused ({code}); {CREDENTIALS} to valid ones")
    if code in ("403", "AccessDenied", "Forbidden") or status == 403:
        return ConfigError(
            f"{what}: access denied by {_where()}; check the credentials' permissions on the bucket"
        )
    return None
