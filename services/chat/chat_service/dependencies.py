"""FastAPI dependencies: the serving objects that the lifespan put on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chat_service.serving_chat import ChatServing
from chat_service.serving_completions import CompletionServing
from chat_service.settings import ChatSettings


def _chat_serving(request: Request) -> ChatServing:
    return request.app.state.chat_serving


def _completion_serving(request: Request) -> CompletionServing:
    return request.app.state.completion_serving


def _settings(request: Request) -> ChatSettings:
    return request.app.state.settings


ChatServingDep = Annotated[ChatServing, Depends(_chat_serving)]
CompletionServingDep = Annotated[CompletionServing, Depends(_completion_serving)]
SettingsDep = Annotated[ChatSettings, Depends(_settings)]
