"""The dispatcher (``dispatcher.py``), the calls it runs on workers (``call.py``) and its per-worker state
(``slots.py``)."""

from ablerefusal.gateway.dispatch.call import MEMORY_SAVING, Call, item_seeds, output_key
from ablerefusal.gateway.dispatch.dispatcher import Dispatcher, default_model
from ablerefusal.gateway.dispatch.slots import DispatchWorker, WorkerSlot

__all__ = [
    "MEMORY_SAVING",
    "Call",
    "DispatchWorker",
    "Dispatcher",
    "WorkerSlot",
    "default_model",
    "item_seeds",
    "output_key",
]
