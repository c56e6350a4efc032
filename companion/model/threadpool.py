"""A lasting CPU threadpool for a llama.cpp context, as llama.cpp's own server attaches one.

Without one, ggml builds a threadpool for every graph it computes and frees it after: with
the daemon's build (no OpenMP), every token decoded starts and joins its worker threads.
llama-cpp-python does not attach one (its binding of llama_attach_threadpool is a TODO), so
the daemon decoded about 5% slower than llama-server on the same build (bench/peer.py).
"""

from __future__ import annotations

import ctypes
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

GGML_MAX_N_THREADS = 512       # ggml.h: the size of a threadpool's CPU mask
GGML_BACKEND_DEVICE_TYPE_CPU = 0


class ThreadpoolParams(ctypes.Structure):
    """ggml.h's struct ggml_threadpool_params."""

    _fields_ = [("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS), ("n_threads", ctypes.c_int),
                ("prio", ctypes.c_int), ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool),
                ("paused", ctypes.c_bool)]


def _functions():
    """ggml's threadpool functions and llama.cpp's attach/detach, found the way llama.cpp's
    common code finds them (through the CPU backend's registry, so a build that loads its
    backends at run time works too)."""
    import llama_cpp._ggml as ggml_module
    from llama_cpp import llama_cpp

    ggml = ggml_module.libggml
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    ggml.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ggml.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    device = ggml.ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)
    registry = ggml.ggml_backend_dev_backend_reg(device) if device else None
    if not registry:
        raise OSError("no CPU backend")

    def proc(name: str, prototype):
        address = ggml.ggml_backend_reg_get_proc_address(registry, name.encode())
        if not address:
            raise OSError(f"the CPU backend has no {name}")
        return prototype(address)

    new = proc("ggml_threadpool_new", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(ThreadpoolParams)))
    free = proc("ggml_threadpool_free", ctypes.CFUNCTYPE(None, ctypes.c_void_p))
    lib = llama_cpp._lib
    lib.ggml_threadpool_params_init.argtypes = [ctypes.POINTER(ThreadpoolParams), ctypes.c_int]
    lib.ggml_threadpool_params_init.restype = None
    lib.llama_attach_threadpool.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.llama_attach_threadpool.restype = None
    lib.llama_detach_threadpool.argtypes = [ctypes.c_void_p]
    lib.llama_detach_threadpool.restype = None
    return lib.ggml_threadpool_params_init, new, free, lib.llama_attach_threadpool, lib.llama_detach_threadpool


def attach_threadpool(llama: Llama, n_threads: int) -> bool:
    """Give llama's context a threadpool of n_threads that lasts as long as the context (with
    llama.cpp's defaults: normal priority, polling 50). False, and ggml's own threadpool per
    graph, where this build of llama.cpp lacks the functions."""
    try:
        params_init, new, free, attach, detach = _functions()
    except (OSError, AttributeError) as exc:
        log.info("no lasting threadpool (%s): llama.cpp makes one per graph", exc)
        return False
    params = ThreadpoolParams()
    params_init(ctypes.byref(params), n_threads)
    pool = new(ctypes.byref(params))
    if not pool:
        return False
    attach(llama._ctx.ctx, pool, None)

    def release() -> None:      # runs before the context is freed (the stack unwinds in reverse)
        if llama._ctx.ctx is not None:
            detach(llama._ctx.ctx)
        free(pool)

    llama._stack.callback(release)
    return True
