"""The federation's participant registry service (an iSHARE satellite subset)."""

from gateway.registry.app import create_registry_app
from gateway.registry.settings import RegistrySettings, load_registry_settings

__all__ = ["RegistrySettings", "create_registry_app", "load_registry_settings"]
