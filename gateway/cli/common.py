"""What every command group shares: the settings of this invocation and the configured store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gateway.core.errors import ConfigurationError
from gateway.settings import Settings, load_settings

if TYPE_CHECKING:
    from gateway.store import Store


def settings_of(ctx: click.Context) -> Settings:
    """The settings, loaded once per invocation; a bad setting ends the command with its message."""
    if ctx.obj is None:
        try:
            ctx.obj = load_settings(config_file=ctx.find_root().params.get("config"))
        except ConfigurationError as err:
            raise click.ClickException(str(err)) from err
    settings: Settings = ctx.obj
    return settings


def open_store(ctx: click.Context) -> Store:
    """The configured store (opened by the caller)."""
    from gateway.store import Store

    settings = settings_of(ctx)
    return Store(settings.database_url, schema=settings.database_schema or None)
