"""Certificates and keys for a throwaway cluster: a CA, the API server's serving
certificate, an admin client certificate and the service-account key; and, for a
node, client certificates for its components and the kubelet's serving certificate."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=2)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write_key(key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _issue(subject: x509.Name, key, ca_name: x509.Name, ca_key, extensions) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, hashes.SHA256())


def write_control_plane_pki(directory: Path) -> dict[str, Path]:
    """Write the files and return their paths by role."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        name: directory / file
        for name, file in {
            "ca_cert": "ca.crt",
            "ca_key": "ca.key",
            "server_cert": "apiserver.crt",
            "server_key": "apiserver.key",
            "admin_cert": "admin.crt",
            "admin_key": "admin.key",
            "sa_key": "service-account.key",
            "sa_pub": "service-account.pub",
        }.items()
    }
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("workfleet-test-ca")
    ca = _issue(ca_name, ca_key, ca_name, ca_key, [(x509.BasicConstraints(ca=True, path_length=None), True)])

    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.DNSName(name) for name in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")]
    # Loopback, the node's bridge gateway (where a node cluster's API server listens) and the
    # "kubernetes" Service address, the first of the 198.19.0.0/16 Service range.
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "198.18.0.1", "198.19.0.1")]
    server = _issue(
        _name("kube-apiserver"),
        server_key,
        ca_name,
        ca_key,
        [
            (x509.SubjectAlternativeName(alt_names), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )
    # O=system:masters is the group Kubernetes' default RBAC binds to cluster-admin.
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _issue(
        _name("workfleet-test-admin", "system:masters"),
        admin_key,
        ca_name,
        ca_key,
        [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)],
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    for cert, path in ((ca, "ca_cert"), (server, "server_cert"), (admin, "admin_cert")):
        paths[path].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for key, path in ((ca_key, "ca_key"), (server_key, "server_key"), (admin_key, "admin_key"), (sa_key, "sa_key")):
        _write_key(key, paths[path])
    paths["sa_pub"].write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return paths


def _load(cert_path: Path, key_path: Path):
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return cert.subject, key


def write_client_certificate(pki: dict[str, Path], name: str, common_name: str, organization: str | None = None) -> tuple[Path, Path]:
    """A client certificate signed by the cluster CA; Kubernetes reads the user from CN, the group from O."""
    ca_name, ca_key = _load(pki["ca_cert"], pki["ca_key"])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(_name(common_name, organization), key, ca_name, ca_key,
                  [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)])
    cert_path, key_path = pki["ca_cert"].parent / f"{name}.crt", pki["ca_cert"].parent / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def write_serving_certificate(pki: dict[str, Path], name: str, hosts: list[str], ips: list[str]) -> tuple[Path, Path]:
    ca_name, ca_key = _load(pki["ca_cert"], pki["ca_key"])
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.DNSName(host) for host in hosts] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = _issue(_name(name), key, ca_name, ca_key, [
        (x509.SubjectAlternativeName(alt_names), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ])
    cert_path, key_path = pki["ca_cert"].parent / f"{name}.crt", pki["ca_cert"].parent / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def write_ca(directory: Path, common_name: str = "workfleet-test-ca") -> dict[str, Path]:
    """A CA of its own (ca.crt, ca.key) in `directory`, for write_serving_certificate and
    write_client_certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    ca = _issue(name, key, name, key, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    paths = {"ca_cert": directory / "ca.crt", "ca_key": directory / "ca.key"}
    paths["ca_cert"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths["ca_key"])
    return paths
