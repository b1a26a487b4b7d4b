"""Azurite over HTTPS with OAuth, driven by the real Azure SDK clients."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

import offline.azurite as azurite_module
from offline.azurite import Azurite, AzuriteError
from offline.tls import TlsFiles

REPO_ROOT = Path(__file__).resolve().parents[2]
ARM_AUDIENCE = "https://management.azure.com/"


def tables(azurite: Azurite, tls_files: TlsFiles, credential: object) -> TableServiceClient:
    return TableServiceClient(
        endpoint=azurite.table_endpoint,
        credential=credential,  # type: ignore[arg-type]
        connection_verify=str(tls_files.ca_bundle),
        retry_total=0,
    )


def queue(azurite: Azurite, tls_files: TlsFiles, credential: object, name: str) -> QueueClient:
    return QueueClient(
        account_url=azurite.queue_endpoint,
        queue_name=name,
        credential=credential,  # type: ignore[arg-type]
        connection_verify=str(tls_files.ca_bundle),
        retry_total=0,
    )


def process_gone(pid: int, within: float = 10.0) -> bool:
    """True once ``pid`` has exited; a zombie nobody reaped yet counts as gone."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_endpoints_are_path_style_https_urls(shared_azurite: Azurite) -> None:
    ports = shared_azurite.ports
    assert shared_azurite.account_name == "devstoreaccount1"
    assert shared_azurite.table_endpoint == f"https://127.0.0.1:{ports.table}/devstoreaccount1"
    assert shared_azurite.queue_endpoint == f"https://127.0.0.1:{ports.queue}/devstoreaccount1"
    assert shared_azurite.blob_endpoint == f"https://127.0.0.1:{ports.blob}/devstoreaccount1"
    assert len({ports.blob, ports.queue, ports.table}) == 3


def test_table_create_upsert_get_with_a_bearer_token(
    shared_azurite: Azurite,
    tls_files: TlsFiles,
    storage_credential: object,
    unique_name: Callable[[str], str],
) -> None:
    table = tables(shared_azurite, tls_files, storage_credential).create_table(unique_name("runs"))
    table.upsert_entity({"PartitionKey": "adf", "RowKey": "run-1", "status": "InProgress"})
    table.upsert_entity({"PartitionKey": "adf", "RowKey": "run-1", "status": "Failed"})

    entity = table.get_entity("adf", "run-1")

    assert entity["status"] == "Failed"


def test_queue_send_and_peek_with_a_bearer_token(
    shared_azurite: Azurite,
    tls_files: TlsFiles,
    storage_credential: object,
    unique_name: Callable[[str], str],
) -> None:
    client = queue(shared_azurite, tls_files, storage_credential, unique_name("alerts"))
    client.create_queue()
    client.send_message("run-1 failed", time_to_live=-1)

    peeked = client.peek_messages(max_messages=5)

    assert [message.content for message in peeked] == ["run-1 failed"]


def test_a_token_for_another_audience_is_refused(
    shared_azurite: Azurite, tls_files: TlsFiles, credential_for: Callable[..., object]
) -> None:
    client = tables(shared_azurite, tls_files, credential_for(audience=ARM_AUDIENCE))

    with pytest.raises(ClientAuthenticationError, match="audience"):
        list(client.list_tables())


def test_an_expired_token_is_refused(
    shared_azurite: Azurite, tls_files: TlsFiles, credential_for: Callable[..., object]
) -> None:
    client = tables(shared_azurite, tls_files, credential_for(lifetime=-600))

    with pytest.raises(ClientAuthenticationError):
        list(client.list_tables())


def test_restart_keeps_ports_and_data_stop_closes_them_and_they_never_move(
    own_azurite: Azurite, tls_files: TlsFiles, storage_credential: object
) -> None:
    service = tables(own_azurite, tls_files, storage_credential)
    service.create_table("runs").upsert_entity({"PartitionKey": "p", "RowKey": "r", "n": 7})
    alerts = queue(own_azurite, tls_files, storage_credential, "alerts")
    alerts.create_queue()
    alerts.send_message("kept", time_to_live=-1)
    endpoints, first_pid = (own_azurite.table_endpoint, own_azurite.queue_endpoint), own_azurite.pid

    own_azurite.restart()

    assert (own_azurite.table_endpoint, own_azurite.queue_endpoint) == endpoints
    assert own_azurite.pid != first_pid
    assert service.get_table_client("runs").get_entity("p", "r")["n"] == 7
    assert [m.content for m in alerts.peek_messages()] == ["kept"]

    pid = own_azurite.pid
    assert pid is not None
    own_azurite.stop()

    assert own_azurite.pid is None
    assert process_gone(pid)
    with pytest.raises(ServiceRequestError):
        list(service.list_tables())
    own_azurite.stop()  # stopping twice is harmless

    with socket.socket() as squatter:  # explicit ports never move: clients hold them
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
        squatter.bind(("127.0.0.1", own_azurite.ports.queue))
        squatter.listen()
        with pytest.raises(AzuriteError, match="EADDRINUSE"):
            own_azurite.restart()
    assert not own_azurite.is_running()


def test_a_missing_install_says_to_run_make_install(
    tmp_path: Path, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azurite_module, "AZURITE_BIN", tmp_path / "node_modules/.bin/azurite")

    with pytest.raises(AzuriteError, match="make install"):
        Azurite(tmp_path, tls_files).start()


def test_a_failed_start_shows_the_log_tail(tmp_path: Path, tls_files: TlsFiles) -> None:
    broken = TlsFiles(tls_files.ca_bundle, tmp_path / "no-cert.pem", tmp_path / "no-key.pem")

    with pytest.raises(AzuriteError, match=r"(?s)exited with code.*azurite\.log.*no-cert\.pem"):
        Azurite(tmp_path / "azurite", broken, startup_timeout=15).start()


def test_free_ports_taken_meanwhile_are_chosen_again(
    tmp_path: Path, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_ports = azurite_module.free_ports
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        choices = iter([[squatter.getsockname()[1], *real_free_ports(2)]])
        monkeypatch.setattr(azurite_module, "free_ports", lambda: next(choices, None) or real_free_ports())

        with Azurite(tmp_path, tls_files) as azurite:
            assert azurite.is_running()
            assert azurite.ports.blob != squatter.getsockname()[1]


def start_cli(tmp_path: Path, tls_files: TlsFiles) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    info_path = tmp_path / "info.json"
    cli = subprocess.Popen(
        [sys.executable, "-m", "offline.azurite", "--dir", str(tmp_path / "az"),
         "--tls-dir", str(tls_files.ca_bundle.parent), "--info", str(info_path)],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not info_path.exists():
        if cli.poll() is not None or time.monotonic() > deadline:
            cli.kill()
            pytest.fail(f"the CLI wrote no info: {cli.communicate()[1].decode()}")
        time.sleep(0.05)
    return cli, json.loads(info_path.read_text())


def test_cli_serves_until_sigterm_and_writes_its_info(
    tmp_path: Path, tls_files: TlsFiles, storage_credential: object
) -> None:
    cli, info = start_cli(tmp_path, tls_files)
    try:
        assert info["pid"] == cli.pid
        assert info["ca_bundle"] == str(tls_files.ca_bundle)
        client = TableServiceClient(
            endpoint=str(info["table_endpoint"]),
            credential=storage_credential,  # type: ignore[arg-type]
            connection_verify=str(info["ca_bundle"]),
        )
        client.create_table("fromcli")
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(15) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            cli.kill()
    assert process_gone(int(str(info["azurite_pid"])))
    assert not (tmp_path / "info.json").exists()


def test_azurite_dies_with_a_killed_parent(tmp_path: Path, tls_files: TlsFiles) -> None:
    cli, info = start_cli(tmp_path, tls_files)
    azurite_pid = int(str(info["azurite_pid"]))

    os.kill(cli.pid, signal.SIGKILL)
    cli.wait(5)

    if not process_gone(azurite_pid):
        os.kill(azurite_pid, signal.SIGKILL)
        pytest.fail("Azurite outlived its killed parent")
