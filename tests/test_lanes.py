"""Device lanes follow the model: a request waits on the lane of the device its model is on (or will be placed on),
and moving a model moves its requests. Two fake GPUs stand in for real ones (their weights stay on the CPU)."""

from __future__ import annotations

import dataclasses
import threading
from functools import partial

import pytest
from gradio_client import Client

from aigc_hub import devices, families, hub
from aigc_hub.loaders import load_dcgan
from aigc_hub.services import ImageService, Lanes, ModelRegistry, QueueFull
from conftest import wait_for

wait_for = partial(wait_for, timeout=60, every=0.005)  # polled as often as before

GiB = 1024**3


def two_fake_gpus() -> list[devices.Device]:
    return [devices.Device("cuda:0", "cuda", 80 * GiB, 10 * GiB, "fake GPU"),
            devices.Device("cuda:1", "cuda", 80 * GiB, 30 * GiB, "fake GPU"),
            devices.Device("cpu", "cpu", 64 * GiB, 32 * GiB, "CPU")]


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two fake GPUs in the inventory; a DCGAN "placed" on one keeps its fp32 weights on the CPU."""
    monkeypatch.setattr(devices, "inventory", two_fake_gpus)

    def on_cpu(path, config, device, dtype):
        import torch

        return load_dcgan(path, config, "cpu", torch.float32)

    monkeypatch.setitem(families.FAMILIES, "dcgan", dataclasses.replace(families.FAMILIES["dcgan"], load=on_cpu))




def test_a_busy_lane_holds_its_own_requests_only():
    lanes = Lanes(slots=1, max_waiting=1)
    release = threading.Event()
    entered: list[str] = []

    def hold(device: str) -> None:
        with lanes.hold(device):
            entered.append(device)
            release.wait(30)

    first = threading.Thread(target=hold, args=("cuda:0",))
    first.start()
    wait_for(lambda: entered == ["cuda:0"])
    second = threading.Thread(target=hold, args=("cuda:0",))
    second.start()
    wait_for(lambda: lanes.busy().get("cuda:0") == (1, 1))
    with lanes.hold("cuda:1"):  # another device's lane is free
        assert lanes.busy()["cuda:1"] == (1, 0)
    with pytest.raises(QueueFull, match="queue for cuda:0 is full"):
        with lanes.hold("cuda:0"):
            pass
    release.set()
    first.join(30), second.join(30)
    assert entered == ["cuda:0", "cuda:0"] and lanes.busy() == {}


def test_waiting_requests_enter_in_arrival_order():
    lanes = Lanes(slots=1, max_waiting=8)
    release = threading.Event()
    order: list[int] = []

    def hold(i: int) -> None:
        with lanes.hold("cpu"):
            order.append(i)
            if i == 0:
                release.wait(30)

    threads = [threading.Thread(target=hold, args=(0,))]
    threads[0].start()
    wait_for(lambda: order == [0])
    for i in range(1, 6):  # each queues behind the one before it
        threads.append(threading.Thread(target=hold, args=(i,)))
        threads[-1].start()
        wait_for(lambda: lanes.busy().get("cpu") == (1, i))
    release.set()
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3, 4, 5]


def test_planned_device_follows_placement_and_moves(fake_gpus, tmp_hub, tiny_gan):
    hub.push(tiny_gan, "me/tiny")
    registry = ModelRegistry()
    assert registry.planned_device("me/tiny") == "cuda:1", "not loaded: where the policy would place it"
    registry.load("me/tiny", "cuda:0")
    assert registry.planned_device("me/tiny") == "cuda:0", "loaded: where it is"
    result = ImageService(registry).generate("me/tiny", 2, seed=3)
    assert result.images.shape[0] == 2


def test_moving_a_model_in_the_models_tab_moves_its_requests(fake_gpus, launched, tmp_hub, tiny_gan, monkeypatch):
    used: list[str] = []
    original = Lanes.hold

    def spy(self, device):
        used.append(device)
        return original(self, device)

    monkeypatch.setattr(Lanes, "hold", spy)
    hub.push(tiny_gan, "me/tiny")
    url, _ = launched(image_model="me/tiny", tabs=["image", "models"], engine="inline")  # the fake GPUs are here
    client = Client(url, verbose=False)
    client.predict("me/tiny", 0, 1, "any", api_name="/generate_image")
    assert used == ["cuda:1"], "preloaded where the policy placed it: the GPU with the most free memory"
    status, _, _ = client.predict("me/tiny", "cuda:0", api_name="/load_model")
    assert status.startswith("Loaded me/tiny on cuda:0")
    client.predict("me/tiny", 0, 1, "any", api_name="/generate_image")
    assert used == ["cuda:1", "cuda:0"], "after the move, its requests queue on cuda:0"
