"""Offline emulator of the Azure REST APIs Pipeline Gateway calls.

ADF (ARM 2018-06-01), Synapse pipelines (2020-12-01), Synapse Spark batches (Livy), Synapse
Workspaces_Get, Fabric job instances, and the App Service managed-identity endpoint, on one local HTTPS port, faithful
enough that the official SDK clients work against it unchanged. See README.md in this folder.
"""

from __future__ import annotations

from .config import (
    ActivitySpec,
    EmulatorConfig,
    FactorySpec,
    FailureSpec,
    IdentitySpec,
    PipelineSpec,
    SparkPoolSpec,
    WorkspaceSpec,
)
from .emulator import Emulator
from .fabric_config import FabricActivitySpec, FabricFailureSpec, FabricPipelineSpec, FabricWorkspaceSpec
from .faults import Fault

__all__ = [
    "ActivitySpec",
    "Emulator",
    "EmulatorConfig",
    "FabricActivitySpec",
    "FabricFailureSpec",
    "FabricPipelineSpec",
    "FabricWorkspaceSpec",
    "FactorySpec",
    "FailureSpec",
    "Fault",
    "IdentitySpec",
    "PipelineSpec",
    "SparkPoolSpec",
    "WorkspaceSpec",
]
