"""Certificates for a local broker's TLS listeners, made for the session (EC P-256, PEM).

Kafka reads them as PEM stores (``ssl.keystore.type=PEM``: a PKCS#8 key and its chain in
one file), so no keytool or JKS is involved.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """The PEM files written for one broker or cluster."""

    ca_file: Path            # the CA the broker's certificate chains to, and that it trusts
    server_keystore: Path    # the broker's key (PKCS#8) and certificate chain
    client_cert: Path        # a client certificate signed by ca_file's CA
    client_key: Path
    other_ca_file: Path      # an unrelated CA: neither the broker nor its clients trust it
    other_client_cert: Path  # a client certificate signed by the unrelated CA
    other_client_key: Path

    @classmethod
    def at(cls, directory: Path) -> Pki:
        """Where ``write_pki(directory)`` puts its files."""
        return cls(ca_file=directory / "ca.pem",
                   server_keystore=directory / "server-keystore.pem",
                   client_cert=directory / "client.pem",
                   client_key=directory / "client-key.pem",
                   other_ca_file=directory / "other-ca.pem",
                   other_client_cert=directory / "other-client.pem",
                   other_client_key=directory / "other-client-key.pem")

    def exists(self) -> bool:
        return all(Path(p).exists() for p in vars(self).values())


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "event-gateway tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name,
             key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False))


def _new_ca(common_name: str) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(_name(common_name), _name(common_name), key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _Issuer(cert, key)


def _leaf(ca: _Issuer, common_name: str, usage: x509.ObjectIdentifier,
          names: list[x509.GeneralName]) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_builder(_name(common_name), ca.cert.subject, key)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _Issuer(builder.sign(ca.key, hashes.SHA256()), key)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.write_bytes(data)
    if secret:
        path.chmod(0o600)


def write_pki(directory: Path, *, hosts: tuple[str, ...] = ("localhost",),
              ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    """A CA, a broker certificate for ``hosts`` and ``ips``, a client certificate; and an
    unrelated CA with a client certificate of its own, for tests that must be refused."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, other_ca = _new_ca("gateway test CA"), _new_ca("unrelated test CA")
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    server = _leaf(ca, hosts[0] if hosts else ips[0], ExtendedKeyUsageOID.SERVER_AUTH, names)
    client = _leaf(ca, "gateway-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    stranger = _leaf(other_ca, "gateway-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pki = Pki.at(directory)
    _write(pki.ca_file, _pem(ca.cert))
    _write(pki.server_keystore, _key_pem(server.key) + _pem(server.cert) + _pem(ca.cert),
           secret=True)
    _write(pki.client_cert, _pem(client.cert))
    _write(pki.client_key, _key_pem(client.key), secret=True)
    _write(pki.other_ca_file, _pem(other_ca.cert))
    _write(pki.other_client_cert, _pem(stranger.cert))
    _write(pki.other_client_key, _key_pem(stranger.key), secret=True)
    return pki
