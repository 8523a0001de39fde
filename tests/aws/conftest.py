"""AWS tests: the real Terraform and AWS provider against moto's server on 127.0.0.1.

One moto server per session (reset before each test). In front of it runs a small HTTP proxy, also on
127.0.0.1, that plays the parts moto cannot: it answers RunInstances with EC2's capacity errors for chosen
subnets, and puts a cloud-init host-key block into GetConsoleOutput. Everything else passes through untouched.
"""

import base64
import http.client
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from swiftfleet.settings import AwsCluster, load_cluster
from tests.conftest import REPO, free_port

REGION = "us-east-1"
AMI_PARAMETER = "/swiftfleet-test/dlami/ami-id"  # moto refuses names under /aws/
ADMIN_CIDR = "203.0.113.7/32"
# Test-only settings (terraform/tests/moto/moto_override.tf, which says why each is there) are dropped into the
# copied module as a Terraform override file; placement groups are off in the tests' cluster files.
MOTO_OVERRIDE = REPO / "terraform" / "tests" / "moto" / "moto_override.tf"
CAPACITY_MESSAGES = {
    "InsufficientInstanceCapacity": "We currently do not have sufficient {type} capacity in the Availability Zone "
    "you requested ({zone}). Our system will be working on provisioning additional capacity.",
    "Unsupported": "Your requested instance type ({type}) is not supported in your requested Availability Zone "
    "({zone}).",
    "UnauthorizedOperation": "You are not authorized to perform this operation.",
}
STATUS = {"InsufficientInstanceCapacity": 500, "Unsupported": 400, "UnauthorizedOperation": 403}


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"moto_server did not start; see {log.name}") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@dataclass
class FaultProxy:
    """Forwards to moto; injects EC2 errors for RunInstances in chosen subnets and host keys on the console."""

    moto_url: str
    host_keys: list[str]  # public key lines handed out to instances, one each, round robin
    url: str = ""  # where the proxy listens, set once it does
    failures: dict[str, str] = field(default_factory=dict)  # subnet id -> EC2 error code
    run_instances: list[str] = field(default_factory=list)  # subnet of every RunInstances call, in order
    console_keys: dict[str, str] = field(default_factory=dict)  # instance id -> the key its console shows
    loopback: dict[bytes, bytes] = field(default_factory=dict)  # moto's public IPv4 -> the one shown instead
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.failures.clear()
            self.run_instances.clear()
            self.console_keys.clear()
            self.loopback.clear()

    def fault(self, params: dict[str, str]) -> tuple[int, bytes] | None:
        if params.get("Action") != "RunInstances":
            return None
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId", "")
        with self.lock:
            self.run_instances.append(subnet)
            code = self.failures.get(subnet)
        if code is None:
            return None
        zone = params.get("Placement.AvailabilityZone", "")
        message = CAPACITY_MESSAGES[code].format(type=params.get("InstanceType"), zone=zone)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>5c3b8a3e-0000-4000-8000-swiftfleet</RequestID></Response>"
        )
        return STATUS[code], body.encode()

    def public_ips(self, data: bytes) -> bytes:
        """Instances' public IPv4s as loopback addresses: moto hands out real internet addresses (54.x, 3.x), and
        the kit logs into nodes (the running-job check before `down`); a test may only ever reach loopback."""

        def swap(m: re.Match[bytes]) -> bytes:
            with self.lock:
                n = self.loopback.setdefault(m[2], b"")
                if not n:
                    n = self.loopback[m[2]] = (
                        f"127.0.{len(self.loopback) // 250}.{len(self.loopback) % 250 + 2}".encode()
                    )
            return m[1] + n + m[3]

        return re.sub(rb"(<(?:ipAddress|publicIp)>)(\d+\.\d+\.\d+\.\d+)(</)", swap, data)

    def console(self, params: dict[str, str], data: bytes) -> bytes:
        """Moto's sample console text plus the block cloud-init prints at first boot."""
        instance = params.get("InstanceId", "")
        with self.lock:
            key = self.console_keys.setdefault(
                instance, self.host_keys[len(self.console_keys) % len(self.host_keys)]
            )
        text = (
            "Cloud-init v. 24.1 running 'modules:final'\n"
            "-----BEGIN SSH HOST KEY KEYS-----\n"
            f"{key} root@ip-172-31-0-1\n"
            "-----END SSH HOST KEY KEYS-----\n"
            "Cloud-init v. 24.1 finished\n"
        )
        encoded = base64.b64encode(text.encode()).decode()
        return re.sub(rb"<output>.*?</output>", f"<output>{encoded}</output>".encode(), data, flags=re.S)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_ProxyServer"

    def log_message(self, format: str, *args: Any) -> None:  # the SDKs are chatty; keep test output clean
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        proxy = self.server.proxy
        fault = proxy.fault(params)
        if fault is not None:
            status, data = fault
            self._reply(status, [("Content-Type", "text/xml")], data)
            return
        target = urllib.parse.urlsplit(proxy.moto_url)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        skip = {"host", "content-length", "connection", "transfer-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if params.get("Action") == "GetConsoleOutput" and resp.status == 200:
            data = proxy.console(params, data)
        if params.get("Action") in ("RunInstances", "DescribeInstances"):
            data = proxy.public_ips(data)
        self._reply(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in skip], data)

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        # One request per connection: the AWS SDKs reused kept-alive connections to this proxy and now and then
        # read from one that had just closed ("use of closed network connection"), twice in a row in a CI run,
        # past the provider's retries. A fresh loopback connection per call costs nothing.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _forward


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy


@pytest.fixture(scope="session")
def host_keys(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real ed25519 public keys for the proxy to show as the nodes' host keys."""
    d = tmp_path_factory.mktemp("hostkeys")
    keys = []
    for i in range(3):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / f"k{i}")], check=True)
        keys.append(" ".join((d / f"k{i}.pub").read_text().split()[:2]))
    return keys


@pytest.fixture(scope="session")
def proxy(moto_url: str, host_keys: list[str]) -> Iterator[FaultProxy]:
    state = FaultProxy(moto_url=moto_url, host_keys=host_keys)
    server = _ProxyServer(("127.0.0.1", 0), _Handler)
    server.proxy = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def terraform_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The production module, copied, plus the test-only override; its workspaces live only here."""
    dest = tmp_path_factory.mktemp("tf") / "terraform"
    shutil.copytree(
        REPO / "terraform", dest, ignore=shutil.ignore_patterns(".terraform", "terraform.tfstate*")
    )
    shutil.copy(MOTO_OVERRIDE, dest / "moto_override.tf")
    return dest


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin's key pair: the public half goes to the nodes, the private half into the inventory."""
    key = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture
def aws(
    proxy: FaultProxy,
    moto_url: str,
    terraform_copy: Path,
    isolated_state: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FaultProxy]:
    """A fresh moto account reached through the proxy, an AMI behind an SSM parameter, fake credentials."""
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10
    ).close()
    proxy.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(isolated_state / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(isolated_state / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never probe the instance-metadata address
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SWIFTFLEET_TERRAFORM_DIR", str(terraform_copy))
    ec2 = boto3.client("ec2", region_name=REGION)
    image = next(i for i in ec2.describe_images(Owners=["amazon"])["Images"] if i["Architecture"] == "x86_64")
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=AMI_PARAMETER, Value=image["ImageId"], Type="String"
    )
    yield proxy


def default_subnet(zone: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    filters = [
        {"Name": "default-for-az", "Values": ["true"]},
        {"Name": "availability-zone", "Values": [zone]},
    ]
    return str(ec2.describe_subnets(Filters=filters)["Subnets"][0]["SubnetId"])


def cluster_file(path: Path, ssh_key: Path, **settings: Any) -> Path:
    data = {
        "provider": "aws",
        "name": "sf-test",
        "region": REGION,
        "instance_type": "g5.xlarge",
        "node_count": 2,
        "admin_cidrs": [ADMIN_CIDR],
        "public_key_file": str(ssh_key.with_suffix(".pub")),
        "ami_ssm_parameter": AMI_PARAMETER,
        "placement_group": False,
        **settings,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def aws_spec(path: Path, ssh_key: Path, **settings: Any) -> AwsCluster:
    """A cluster file written and loaded the way the CLI loads it."""
    spec = load_cluster(cluster_file(path, ssh_key, **settings))
    assert isinstance(spec, AwsCluster)
    return spec


def stubbed(service: str) -> tuple[Any, Stubber]:
    """A client of `service` that reaches nothing: botocore's Stubber answers it (for what moto does not serve)."""
    client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def live_instances() -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", region_name=REGION)
    states = ["pending", "running", "stopping", "stopped", "shutting-down"]
    pages = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": states}])[
        "Reservations"
    ]
    return [i for r in pages for i in r["Instances"]]


def leftovers() -> dict[str, list[str]]:
    """Everything a cluster creates that must be gone after a failed `up` or a `down`."""
    ec2 = boto3.client("ec2", region_name=REGION)
    groups = [
        g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"
    ]
    iam = boto3.client("iam", region_name=REGION)
    efs = boto3.client("efs", region_name=REGION)
    return {
        "instances": [i["InstanceId"] for i in live_instances()],
        "file_systems": [f["FileSystemId"] for f in efs.describe_file_systems()["FileSystems"]],
        "security_groups": groups,
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"]],
        "instance_profiles": [
            p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
        ],
    }


NOTHING: dict[str, list[str]] = {
    "instances": [],
    "file_systems": [],
    "security_groups": [],
    "key_pairs": [],
    "roles": [],
    "instance_profiles": [],
}
