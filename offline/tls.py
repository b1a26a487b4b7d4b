"""One certificate authority for the whole offline stack.

The app keeps certificate verification on everywhere; locally it is given this CA's bundle
(``REQUESTS_CA_BUNDLE``), and both the emulator and Azurite serve certificates it signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    ca_bundle: Path
    cert: Path
    key: Path


def ensure_tls_files(directory: Path) -> TlsFiles:
    """Returns the CA bundle and a loopback server certificate in ``directory``.

    Files already there are reused, so every process of one stack trusts the same CA.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
    if all(path.exists() for path in (files.ca_bundle, files.cert, files.key)):
        return files
    ca = trustme.CA(organization_name="Pipeline Gateway offline CA")
    server = ca.issue_cert(*HOSTS)
    ca.cert_pem.write_to_path(str(files.ca_bundle))
    server.private_key_pem.write_to_path(str(files.key))
    # The chain lets clients that only trust the CA verify the leaf.
    server.cert_chain_pems[0].write_to_path(str(files.cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert), append=True)
    files.key.chmod(0o600)
    return files
