"""S3 operation handlers, by family; HANDLERS maps each operation to its handler."""

from __future__ import annotations

from leofs.gateway.context import Handler
from leofs.gateway.handlers import acl, buckets, copy, listing, multipart, objects, tagging, versioning
from leofs.gateway.router import Op

HANDLERS: dict[Op, Handler] = {
    Op.ListBuckets: buckets.list_buckets,
    Op.CreateBucket: buckets.create_bucket,
    Op.DeleteBucket: buckets.delete_bucket,
    Op.HeadBucket: buckets.head_bucket,
    Op.GetBucketLocation: buckets.get_bucket_location,
    Op.GetBucketVersioning: versioning.get_bucket_versioning,
    Op.PutBucketVersioning: versioning.put_bucket_versioning,
    Op.GetBucketAcl: acl.get_bucket_acl,
    Op.PutBucketAcl: acl.put_bucket_acl,
    Op.ListObjects: listing.list_objects,
    Op.ListObjectsV2: listing.list_objects_v2,
    Op.ListObjectVersions: versioning.list_object_versions,
    Op.PutObject: objects.put_object,
    Op.GetObject: objects.get_object,
    Op.HeadObject: objects.get_object,
    Op.DeleteObject: objects.delete_object,
    Op.DeleteObjects: objects.delete_objects,
    Op.GetObjectAttributes: objects.get_object_attributes,
    Op.CopyObject: copy.copy_object,
    Op.GetObjectAcl: acl.get_object_acl,
    Op.PutObjectAcl: acl.put_object_acl,
    Op.CreateMultipartUpload: multipart.create_multipart_upload,
    Op.UploadPart: multipart.upload_part,
    Op.UploadPartCopy: multipart.upload_part_copy,
    Op.CompleteMultipartUpload: multipart.complete_multipart_upload,
    Op.AbortMultipartUpload: multipart.abort_multipart_upload,
    Op.ListParts: multipart.list_parts,
    Op.ListMultipartUploads: multipart.list_multipart_uploads,
    Op.GetObjectTagging: tagging.get_object_tagging,
    Op.PutObjectTagging: tagging.put_object_tagging,
    Op.DeleteObjectTagging: tagging.delete_object_tagging,
    Op.GetBucketTagging: tagging.get_bucket_tagging,
    Op.PutBucketTagging: tagging.put_bucket_tagging,
    Op.DeleteBucketTagging: tagging.delete_bucket_tagging,
}
