"""ACL operations: Get/PutBucketAcl and Get/PutObjectAcl (canned ACLs, grant headers, or an
AccessControlPolicy document). Changing an object's ACL rewrites its record, never its data."""

from __future__ import annotations

from aiohttp import web

from leofs.accounts import ALL_USERS, AUTHENTICATED_USERS, Grant, canned_grants
from leofs.gateway.body import RequestBody
from leofs.gateway.context import S3Request, Services
from leofs.gateway.handlers.headers import canned_acl
from leofs.gateway.keys import NS_OBJECT, object_key
from leofs.gateway.object_acl import object_grants, stored_grants
from leofs.gateway.owners import canonical_id, owner_of
from leofs.gateway.records import ObjectMeta, meta_encoder
from leofs.gateway.versions import requested_object, rewrite_meta, version_headers
from leofs.s3.errors import S3Error
from leofs.s3.responses import document, elem
from leofs.s3.xmlparse import parse_access_control_policy

_GRANT_HEADERS = {
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
    "x-amz-grant-full-control": "FULL_CONTROL",
}
_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def policy_xml(gw: Services, owner: str, grants: list[Grant]) -> bytes:
    """An ``<AccessControlPolicy>`` document."""
    items = []
    for grant in grants:
        grantee_type, grantee, permission = grant.grantee_type, grant.grantee, grant.permission
        if grantee_type == "Group":
            who = f'<Grantee {_XSI} xsi:type="Group">{elem("URI", grantee)}</Grantee>'
        else:
            user = gw.control.user(grantee)
            name = elem("DisplayName", user.user_id) if user else ""
            who = f'<Grantee {_XSI} xsi:type="CanonicalUser">{elem("ID", canonical_id(gw, grantee))}{name}</Grantee>'
        items.append(f"<Grant>{who}{elem('Permission', permission)}</Grant>")
    body = f"{owner_of(gw, owner)}<AccessControlList>{''.join(items)}</AccessControlList>"
    return document("AccessControlPolicy", body)


async def requested_acl(gw: Services, req: S3Request, owner: str) -> tuple[str, list[Grant]]:
    """The ACL a Put*Acl request asks for: (canned name or "custom", grants)."""
    grant_headers = {h: p for h, p in _GRANT_HEADERS.items() if h in req.headers}
    body = await RequestBody(req.http, req.auth).read_all(gw.config.max_xml_body)
    given = sum(bool(x) for x in ("x-amz-acl" in req.headers, grant_headers, body.strip()))
    if given > 1:
        raise S3Error("InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed")
    if "x-amz-acl" in req.headers:
        acl = canned_acl(req.headers)
        return acl, canned_grants(acl, owner)
    grants: list[Grant] = []
    if grant_headers:
        return "custom", header_grants(gw, req) or []
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header",
                      MissingHeaderName="x-amz-acl")
    policy = parse_access_control_policy(body)
    for grant in policy.grants:
        if grant.grantee_type == "Group":
            if grant.grantee not in (ALL_USERS, AUTHENTICATED_USERS):
                raise S3Error("InvalidArgument", "Invalid group uri")
            grants.append(Grant("Group", grant.grantee, grant.permission))
        elif grant.grantee_type == "CanonicalUser":
            grants.append(Grant("CanonicalUser", _known_user(gw, grant.grantee), grant.permission))
        else:
            grants.append(Grant("CanonicalUser", _user_by_email(gw, grant.grantee), grant.permission))
    return "custom", grants


def header_grants(gw: Services, req: S3Request) -> list[Grant] | None:
    """The grants of a request's ``x-amz-grant-*`` headers (None: it has none), every grantee
    kind: ``id=`` (canonical id), ``uri=`` (group), ``emailAddress=``. With ``x-amz-acl`` too:
    InvalidRequest."""
    present = [(h, p) for h, p in _GRANT_HEADERS.items() if h in req.headers]
    if not present:
        return None
    if "x-amz-acl" in req.headers:
        raise S3Error("InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed")
    grants: list[Grant] = []
    for header, permission in present:
        for item in req.headers[header].split(","):
            kind, _, value = item.strip().partition("=")
            value = value.strip().strip('"')
            if kind.lower() == "uri":
                if value not in (ALL_USERS, AUTHENTICATED_USERS):
                    raise S3Error("InvalidArgument", "Invalid group uri", ArgumentName=header, ArgumentValue=value)
                grants.append(Grant("Group", value, permission))
            elif kind.lower() == "id":
                grants.append(Grant("CanonicalUser", _known_user(gw, value), permission))
            elif kind.lower() == "emailaddress":
                grants.append(Grant("CanonicalUser", _user_by_email(gw, value), permission))
            else:
                raise S3Error("InvalidArgument", f"Unsupported grantee {item.strip()}", ArgumentName=header)
    return grants


def _user_by_email(gw: Services, email: str) -> str:
    """The access key of the user with e-mail address ``email`` (UnresolvableGrantByEmailAddress)."""
    user = gw.control.user_by_email(email)
    if user is None:
        raise S3Error("UnresolvableGrantByEmailAddress", EmailAddress=email)
    return user.access_key


def _known_user(gw: Services, grantee: str) -> str:
    """The access key (how grants are kept) of the user a grant names by canonical id."""
    user = gw.control.user_by_canonical_id(grantee.strip().lower())
    if user is None:
        raise S3Error("InvalidArgument", "Invalid id", ArgumentName="CanonicalUser/ID", ArgumentValue=grantee)
    return user.access_key


async def get_bucket_acl(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    return web.Response(body=policy_xml(gw, bucket.owner, bucket.grants), content_type="application/xml")


async def put_bucket_acl(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    acl, grants = await requested_acl(gw, req, bucket.owner)
    await gw.control.set_bucket_acl(bucket.name, acl, grants)
    return web.Response(status=200)


async def get_object_acl(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    obj = await requested_object(req, gw.backend)
    return web.Response(body=policy_xml(gw, obj.meta.owner, object_grants(obj)), content_type="application/xml",
                        headers=version_headers(req.bucket_record, obj.meta))


async def put_object_acl(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    obj = await requested_object(req, gw.backend)
    acl, grants = await requested_acl(gw, req, obj.meta.owner)
    meta = obj.meta
    meta.acl = acl
    meta.grants = None if acl != "custom" else stored_grants(grants)
    headers = version_headers(req.bucket_record, meta)
    if meta.version_id is not None or "versionId" in req.query:  # the version's entry and, if current, its record
        await rewrite_meta(gw.backend, req.bucket or "", req.key, obj, meta)
        return web.Response(status=200, headers=headers)
    # Same data, same timestamp: only the record's metadata changes. The clock is the stored
    # one plus one, so a PUT that lands meanwhile (a newer clock) wins over this rewrite.
    entry = obj.entry
    data = await gw.backend.read(entry)
    await gw.backend.put(
        NS_OBJECT, object_key(req.bucket or "", req.key), data, meta=meta_encoder.encode(meta),
        cnumber=entry.cnumber, csize=entry.csize, md5=entry.md5, clock=entry.clock + 1, timestamp=entry.timestamp,
    )
    return web.Response(status=200, headers=headers)


def apply_header_grants(gw: Services, req: S3Request, meta: ObjectMeta) -> None:
    """Give a new object (PutObject, CopyObject, CreateMultipartUpload) the ACL of the request's
    ``x-amz-grant-*`` headers, when it has any."""
    grants = header_grants(gw, req)
    if grants is not None:
        meta.acl = "custom"
        meta.grants = stored_grants(grants)
