from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from webhook import create_app
from webhook.config import WebhookConfig


@pytest.fixture
def config() -> WebhookConfig:
    return WebhookConfig()


@pytest.fixture
def app(config: WebhookConfig) -> Flask:
    return create_app(config)


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()
