"""Importing this first applies the embedded defaults (doodleflow.infra.settings) before Prefect, Ray or
albumentations read the environment. The settings themselves live in doodleflow.infra.settings."""

from __future__ import annotations

from doodleflow.infra.settings import configure, default_store, home

__all__ = ["default_store", "home"]

configure()
