variable "cluster_name" {
  description = "Cluster name: prefix of every resource name and the swiftfleet:cluster tag."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.cluster_name))
    error_message = "cluster_name must start with a lowercase letter and hold only a-z, 0-9 and '-' (at most 31 characters)."
  }
}

variable "region" {
  description = "AWS region of the cluster, e.g. us-east-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "instance_type" {
  description = "EC2 instance type of every node, e.g. p4d.24xlarge. GPUs, EFA and placement support come from the live instance-type data."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like p4d.24xlarge."
  }
}

variable "node_count" {
  description = "Number of nodes (ranks 0..node_count-1)."
  type        = number

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 64 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 1 to 64."
  }
}

variable "availability_zone" {
  description = "The one availability zone of the whole cluster. The driver retries capacity errors by applying again with another zone."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$", var.availability_zone))
    error_message = "availability_zone must look like us-east-1a."
  }

  validation {
    condition     = startswith(var.availability_zone, var.region)
    error_message = "availability_zone must lie in the chosen region."
  }
}

variable "subnet_id" {
  description = "Subnet of the nodes; null means the default subnet of availability_zone in the default VPC."
  type        = string
  default     = null

  validation {
    condition     = var.subnet_id == null || can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "subnet_id must look like subnet-0123abcd."
  }
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach SSH (port 22). Required: there is no open default."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0
    error_message = "admin_cidrs must name at least one CIDR (your own address, e.g. 203.0.113.7/32)."
  }

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs: every entry must be a valid CIDR such as 203.0.113.7/32."
  }

  validation {
    condition     = var.allow_ssh_from_anywhere || !anytrue([for c in var.admin_cidrs : endswith(c, "/0")])
    error_message = "admin_cidrs: a /0 entry opens SSH to the whole internet; name your own CIDR or set allow_ssh_from_anywhere = true."
  }
}

variable "allow_ssh_from_anywhere" {
  description = "Explicit opt-in to accept 0.0.0.0/0 or ::/0 in admin_cidrs."
  type        = bool
  default     = false
  nullable    = false
}

variable "client_cidrs" {
  description = "CIDRs allowed to reach deploy_port (swift deploy's API). Empty: the port stays closed."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0))])
    error_message = "client_cidrs: every entry must be a valid CIDR such as 198.51.100.0/24."
  }
}

variable "deploy_port" {
  description = "TCP port of the inference endpoint (swift deploy --port)."
  type        = number
  default     = 8000
  nullable    = false

  validation {
    condition     = var.deploy_port >= 1024 && var.deploy_port <= 65535 && floor(var.deploy_port) == var.deploy_port
    error_message = "deploy_port must be a whole number from 1024 to 65535."
  }

  validation {
    condition     = var.deploy_port < 29500 || var.deploy_port > 29600
    error_message = "deploy_port must not lie in the rendezvous range 29500-29600."
  }

  validation {
    condition     = var.deploy_port < 29601 || var.deploy_port > 29699
    error_message = "deploy_port must not lie in 29601-29699, where rank 0 serves a job's uploads while it is staged."
  }
}

variable "public_key_file" {
  description = "Path of the OpenSSH public key installed on every node (the cluster's key pair)."
  type        = string

  validation {
    condition     = fileexists(var.public_key_file)
    error_message = "public_key_file does not exist."
  }
}

variable "ami_ssm_parameter" {
  description = "SSM parameter that holds the AMI id (default: the Deep Learning Base OSS Nvidia Driver GPU AMI, Ubuntu 22.04)."
  type        = string
  default     = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
  nullable    = false

  validation {
    condition     = startswith(var.ami_ssm_parameter, "/")
    error_message = "ami_ssm_parameter must be a parameter path starting with /."
  }
}

variable "ami_id" {
  description = "Explicit AMI id; null reads ami_ssm_parameter instead."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must look like ami-0123abcd."
  }
}

variable "spot" {
  description = "Launch one-time spot instances (terminated on interruption) instead of on-demand."
  type        = bool
  default     = false
  nullable    = false

  validation {
    condition     = !(var.spot && var.capacity_reservation_id != null)
    error_message = "spot: a capacity reservation or Capacity Block holds on-demand capacity; drop spot or capacity_reservation_id."
  }
}

variable "capacity_reservation_id" {
  description = "Capacity reservation every node launches into (targeted): an On-Demand Capacity Reservation, or a Capacity Block for ML with capacity_block = true. null: no reservation (open capacity). The reservation fixes the AZ; no placement group is made with it."
  type        = string
  default     = null

  validation {
    condition     = var.capacity_reservation_id == null || can(regex("^cr-([0-9a-f]{8}|[0-9a-f]{17})$", var.capacity_reservation_id))
    error_message = "capacity_reservation_id must look like cr-0123456789abcdef0."
  }
}

variable "capacity_block" {
  description = "capacity_reservation_id is a Capacity Block for ML: the nodes launch with market type capacity-block."
  type        = bool
  default     = false
  nullable    = false

  validation {
    condition     = !var.capacity_block || var.capacity_reservation_id != null
    error_message = "capacity_block needs capacity_reservation_id (the Capacity Block's cr- id)."
  }
}

variable "ttl_hours" {
  description = "Hours after first boot when a node powers itself off (and so terminates): a guard against forgotten clusters."
  type        = number
  default     = 12
  nullable    = false

  validation {
    condition     = var.ttl_hours >= 1 && var.ttl_hours <= 168 && floor(var.ttl_hours) == var.ttl_hours
    error_message = "ttl_hours must be a whole number from 1 to 168."
  }
}

variable "root_volume_gib" {
  description = "Size of each node's encrypted gp3 root volume in GiB (models, datasets, checkpoints)."
  type        = number
  default     = 200
  nullable    = false

  validation {
    condition     = var.root_volume_gib >= 50 && var.root_volume_gib <= 16384 && floor(var.root_volume_gib) == var.root_volume_gib
    error_message = "root_volume_gib must be a whole number from 50 to 16384."
  }
}

variable "placement_group" {
  description = "Put the nodes in a cluster placement group. null: yes where the instance type supports the cluster strategy, unless capacity_reservation_id is set."
  type        = bool
  default     = null

  # A targeted reservation places the instances itself; the module's own group conflicts with it.
  validation {
    condition     = !(var.placement_group == true && var.capacity_reservation_id != null)
    error_message = "placement_group: the module's cluster placement group conflicts with a targeted capacity_reservation_id; leave placement_group null or false."
  }
}

variable "ssh_user" {
  description = "Login user of the AMI (ubuntu on the Ubuntu DLAMI, ec2-user on Amazon Linux)."
  type        = string
  default     = "ubuntu"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]*$", var.ssh_user))
    error_message = "ssh_user must be a plain Unix user name."
  }
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "aws_max_retries" {
  description = "Retries of a failed AWS API call. Low, so that a capacity error reaches the kit's AZ failover quickly."
  type        = number
  default     = 5

  validation {
    condition     = var.aws_max_retries >= 0 && var.aws_max_retries <= 25 && floor(var.aws_max_retries) == var.aws_max_retries
    error_message = "aws_max_retries must be a whole number from 0 to 25."
  }
}

variable "s3_read" {
  description = "s3://bucket[/prefix] URIs the nodes may list and read (a prefix: that object and everything under it as a folder). With s3_write non-empty, the module makes the nodes' IAM role and instance profile."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition = alltrue([
      for u in var.s3_read : can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^*?$[:cntrl:]]{0,512})?$", u))
      && !can(regex("^s3://([^/]*\\.\\.|[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+(/|$))", u)) && !strcontains(replace(u, "s3://", ""), "//")
    ])
    error_message = "s3_read: every entry must be s3://bucket or s3://bucket/prefix (a valid bucket name; no wildcards, policy variables or empty parts in the prefix)."
  }
}

variable "s3_write" {
  description = "s3://bucket[/prefix] URIs the nodes may also write to (PutObject and multipart uploads, no delete): job outputs."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition = alltrue([
      for u in var.s3_write : can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^*?$[:cntrl:]]{0,512})?$", u))
      && !can(regex("^s3://([^/]*\\.\\.|[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+(/|$))", u)) && !strcontains(replace(u, "s3://", ""), "//")
    ])
    error_message = "s3_write: every entry must be s3://bucket or s3://bucket/prefix (a valid bucket name; no wildcards, policy variables or empty parts in the prefix)."
  }
}

variable "instance_profile" {
  description = "Name of an existing instance profile for every node, instead of the one made for s3_read/s3_write. null: none."
  type        = string
  default     = null

  validation {
    condition     = var.instance_profile == null || can(regex("^[A-Za-z0-9+=,.@_-]{1,128}$", var.instance_profile))
    error_message = "instance_profile must be an IAM instance profile name (1-128 of A-Z a-z 0-9 + = , . @ _ -)."
  }

  validation {
    condition     = var.instance_profile == null || length(concat(var.s3_read, var.s3_write)) == 0
    error_message = "instance_profile: give either an existing instance profile or s3_read/s3_write (for which the module makes one), not both."
  }
}

variable "shared_fs" {
  description = "Shared file system of the cluster: \"none\", or \"efs\" for one encrypted Amazon EFS file system with a mount target in the cluster's subnet (nodes mount it at /shared for the hub cache). It bills per GB stored and is deleted, with all it holds, by `cluster down`."
  type        = string
  default     = "none"
  nullable    = false

  validation {
    condition     = contains(["none", "efs"], var.shared_fs)
    error_message = "shared_fs must be \"none\" or \"efs\"."
  }
}
