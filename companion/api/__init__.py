"""Thin HTTP adapters over the services, one blueprint per API dialect."""

from __future__ import annotations

from flask import current_app

from ..services import Services


def services() -> Services:
    """The app's services (built once by create_app)."""
    return current_app.extensions["companion"]
