# Optional S3 access for the nodes (jobs' s3:// models, datasets and outputs, through the AWS CLI). Off by
# default: no role, no instance profile, and nodes get no AWS credentials. With s3_read/s3_write the module
# makes a role that EC2 assumes, with one inline policy of least privilege; with instance_profile the nodes
# get that existing profile instead.

data "aws_partition" "current" {}

data "aws_iam_instance_profile" "given" {
  count = var.instance_profile == null ? 0 : 1
  name  = var.instance_profile
}

locals {
  partition = data.aws_partition.current.partition
  # s3://bucket[/prefix] -> bucket and the prefix without slashes at either end ("": the whole bucket).
  s3_grants = [
    for g in concat(
      [for uri in var.s3_read : { uri = uri, write = false }],
      [for uri in var.s3_write : { uri = uri, write = true }],
      ) : {
      bucket = regex("^s3://([^/]+)", g.uri)[0]
      prefix = trim(replace(g.uri, "/^s3://[^/]+/", ""), "/")
      write  = g.write
    }
  ]
  s3_access = length(local.s3_grants) > 0

  # A prefix is the object of that name and everything under it as a folder, never `prefix-other`.
  s3_objects = {
    for mode in ["read", "write"] : mode => distinct(flatten([
      for g in local.s3_grants : (
        g.prefix == "" ? ["arn:${local.partition}:s3:::${g.bucket}/*"]
        : ["arn:${local.partition}:s3:::${g.bucket}/${g.prefix}", "arn:${local.partition}:s3:::${g.bucket}/${g.prefix}/*"]
      ) if mode == "read" || g.write
    ]))
  }
  s3_buckets = distinct([for g in local.s3_grants : g.bucket])
  # ListBucket (what `aws s3 sync` calls to compare) only for the listed prefixes: the CLI lists a sync's
  # source or destination as "prefix/". A bucket granted whole is listed without a condition.
  s3_list_prefixes = {
    for b in local.s3_buckets : b => (
      anytrue([for g in local.s3_grants : g.bucket == b && g.prefix == ""]) ? null
      : distinct(flatten([for g in local.s3_grants : [g.prefix, "${g.prefix}/*"] if g.bucket == b]))
    )
  }

  s3_statements = concat(
    [
      for i, b in local.s3_buckets : {
        Sid       = "ListBucket${i}"
        Effect    = "Allow"
        Action    = ["s3:ListBucket"]
        Resource  = ["arn:${local.partition}:s3:::${b}"]
        Condition = local.s3_list_prefixes[b] == null ? null : { StringLike = { "s3:prefix" = local.s3_list_prefixes[b] } }
      }
    ],
    [{ Sid = "ReadObjects", Effect = "Allow", Action = ["s3:GetObject"], Resource = local.s3_objects.read, Condition = null }],
    # PutObject covers single and multipart uploads (create, parts, complete); the CLI aborts a failed
    # multipart upload so its parts stop costing. No DeleteObject: outputs are synced without --delete.
    length(local.s3_objects.write) == 0 ? [] : [{
      Sid       = "WriteObjects"
      Effect    = "Allow"
      Action    = ["s3:PutObject", "s3:AbortMultipartUpload"]
      Resource  = local.s3_objects.write
      Condition = null
    }],
  )
  # IAM rejects "Condition": null, so unset keys are dropped.
  s3_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [for s in local.s3_statements : { for k, v in s : k => v if v != null }]
  })

  # IAM names are global to the account: the region keeps two clusters of one name apart.
  node_role_name = "${local.name_prefix}-${var.region}-node"
  # The profile every node gets, or null. The given one is read first: a wrong name fails the plan.
  instance_profile = (
    local.s3_access ? aws_iam_instance_profile.node[0].name
    : one(data.aws_iam_instance_profile.given[*].name)
  )
}

resource "aws_iam_role" "node" {
  count = local.s3_access ? 1 : 0

  name        = local.node_role_name
  description = "swiftfleet cluster ${var.cluster_name}: S3 access of the nodes"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.${data.aws_partition.current.dns_suffix}" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "s3" {
  count = local.s3_access ? 1 : 0

  name   = "s3-access"
  role   = aws_iam_role.node[0].id
  policy = local.s3_policy
}

resource "aws_iam_instance_profile" "node" {
  count = local.s3_access ? 1 : 0

  name = local.node_role_name
  role = aws_iam_role.node[0].name
}
