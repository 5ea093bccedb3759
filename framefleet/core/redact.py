"""Secrets out of what people read: URLs with their password or signature masked.

Every URL framefleet prints in a log line or an error message passes through `redact_url`, so a
Redis password (``redis://:PASSWORD@host``) or a presigned S3 URL's signature never reaches a log,
a result document, the job state or Flower. S3 credentials never get that far: boto3 reads them
from its own configuration, and messages carry only ``s3://bucket/prefix`` URIs.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "**"
"""What a secret is replaced by (the mask kombu uses for broker URLs too)."""

SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "awsaccesskeyid",
        "x-goog-signature",
        "x-goog-credential",
        "sig",
    }
)
"""Query parameters whose values are secrets (lower case): presigned S3/GCS/Azure URLs."""


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query values replaced by ``**``.

    Text that is not a URL comes back unchanged.

    Args:
        url: any URL: ``redis://:pw@host:6379/0``, a presigned ``https://`` URL, ``s3://b/p``.

    Example:
        >>> redact_url("rediss://user:hunter2@cache:6380/0?ssl_cert_reqs=required")
        'rediss://user:**@cache:6380/0?ssl_cert_reqs=required'
        >>> redact_url("https://b.s3.amazonaws.com/a.jpg?X-Amz-Signature=abc&x=1")
        'https://b.s3.amazonaws.com/a.jpg?X-Amz-Signature=**&x=1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: not a URL we can take apart
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        if has_password:
            netloc = f"{user}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in SECRET_QUERY_KEYS for key, _ in pairs):
            masked = [(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(masked, safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    # urlunsplit would drop the "//" of an empty host (unix:///tmp/redis.sock).
    rebuilt = (
        f"{parts.scheme}://{netloc}{parts.path}"
        if "://" in url
        else urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    )
    return (
        rebuilt + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    )
