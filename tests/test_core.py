"""The app core (core.py): one way in for every front end, and the capacity sized in one place."""

from __future__ import annotations

import pytest

from aigc_hub.config import AppConfig
from aigc_hub.core import AppContext, Capacity, UnknownModel, WrongTask
from aigc_hub.services import ModelRegistry
from aigc_hub.services.lanes import QueueFull


def test_admit_checks_the_listing_then_holds_the_models_lane(tmp_hub):
    ctx = AppContext(AppConfig.of(preload=False, lane_concurrency=1, queue_size=1, batching=False), ModelRegistry())
    with pytest.raises(UnknownModel, match="unknown model 'me/nothing' for the Image tab"):
        with ctx.admit("me/nothing", "image"):
            pass
    with pytest.raises(WrongTask, match="aigc-hub/dcgan-mnist is a model for image, not for text") as wrong:
        with ctx.admit("aigc-hub/dcgan-mnist", "text"):
            pass
    assert wrong.value.serves == "image"
    with ctx.admit("aigc-hub/dcgan-mnist", "image") as ref:
        assert ref == "aigc-hub/dcgan-mnist" and ctx.lanes.busy()["cpu"][0] == 1
    assert ctx.lanes.busy().get("cpu", (0, 0))[0] == 0  # given back


def test_capacity_is_sized_once_from_the_settings():
    assert Capacity.of(AppConfig.of(max_batch=16, queue_size=10)) == Capacity(16, 10)
    off = Capacity.of(AppConfig.of(batching=False, lane_concurrency=3, queue_size=10))
    assert (off.in_flight, off.queue, off.api_threads) == (3, 13, 21)
