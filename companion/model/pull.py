"""Pulling GGUF models by name into <data_dir>/models, and deleting pulled ones. No HTTP server here.

References (Ollama's syntax first):

- ``hf.co/OWNER/REPO[:QUANT]`` (or ``huggingface.co/...``, or a bare ``OWNER/REPO[:QUANT]``): the repo's
  ``.gguf`` whose name holds QUANT (case-insensitive); without one Q4_K_M, else the smallest file;
- ``OWNER/REPO FILE.gguf`` (two arguments) or ``OWNER/REPO/FILE.gguf``: that file;
- ``https://.../FILE.gguf``: a plain download (a hub ``/resolve/`` URL counts as a hub file).

Hub files are checked against the size and LFS sha256 of the hub's file listing. A download is
written to ``FILE.gguf.partial`` and renamed only once it is checked; an interrupted one resumes
with a Range request (on the next try or the next pull), a wrong one is deleted.

The hub is asked with plain HTTP (requests), not with huggingface_hub's download functions: those
refuse to run under HF_HUB_OFFLINE, which the daemon sets for its embedder. The library still
parses the hub's answers (ModelInfo) and builds its URLs (hf_hub_url).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Generator, Iterator, Sequence
from urllib.parse import quote, unquote, urlsplit

import requests

from companion.errors import BadGateway, BadRequest, Conflict, Forbidden, GatewayTimeout, NotFound, StorageFull, full_disk_refused

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock on the partial file
    fcntl = None  # type: ignore[assignment]

Progress = Callable[[dict], None]
DEFAULT_QUANT = "Q4_K_M"
HUB_HOSTS = ("hf.co", "huggingface.co")
NAME_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
REPO = re.compile(rf"{NAME_PART}/{NAME_PART}")
QUANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SPLIT_PART = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)
SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.gguf")
CHUNK = 1 << 16                # bytes read at a time (a broken read loses at most this)
PROGRESS_EVERY = 0.25          # seconds between progress reports
TIMEOUT = (15, 60)             # connect, read (seconds)


@dataclass(frozen=True)
class Reference:
    """What to pull: a hub repo (with a file or a quant, or neither), or a plain URL."""
    repo: str | None = None
    file: str | None = None
    quant: str | None = None
    revision: str = "main"
    url: str | None = None


@dataclass(frozen=True)
class Source:
    """One file to download, with what the hub says it must be (None: unknown)."""
    url: str
    filename: str
    size: int | None = None
    sha256: str | None = None
    label: str = ""


def parse_reference(text: str, file: str | None = None) -> Reference:
    """A model reference in one of the forms above (BadRequest for anything else)."""
    ref = text.strip()
    if not ref:
        raise BadRequest("a model reference is needed, e.g. hf.co/OWNER/REPO:Q4_K_M")
    host = (urlsplit(ref).hostname or "").lower().removeprefix("www.")
    if ref.startswith(("http://", "https://")) and file is None and (host not in HUB_HOSTS or "/resolve/" in ref
                                                                     or "/blob/" in ref):
        return _url_reference(ref)
    bare = re.sub(r"^(https?://)?(www\.)?", "", ref)
    host, _, rest = bare.partition("/")
    if host.lower() in HUB_HOSTS:
        bare = rest
    bare = bare.strip("/")
    quant = None
    if ":" in bare:
        bare, quant = bare.rsplit(":", 1)
        if quant.lower() == "latest":
            quant = None
        elif not QUANT.fullmatch(quant):
            raise BadRequest(f"{quant!r} is not a quantization name (such as Q4_K_M)")
    parts = bare.split("/")
    if len(parts) < 2 or not REPO.fullmatch("/".join(parts[:2])):
        raise BadRequest(f"{text!r} is not a model reference: use hf.co/OWNER/REPO[:QUANT], OWNER/REPO FILE.gguf "
                         "or an https:// URL of a .gguf file (Ollama's library names are not supported)")
    repo = "/".join(parts[:2])
    path = "/".join(parts[2:]) or None
    if file is not None and path is not None:
        raise BadRequest("give the file either in the reference or as a second argument, not both")
    path = path or (file.strip().strip("/") if file else None)
    if path is not None:
        if quant is not None:
            raise BadRequest("a reference names either a file or a quantization, not both")
        if not path.lower().endswith(".gguf") or ".." in path.split("/") or "\\" in path:
            raise BadRequest(f"{path!r} is not a .gguf file in the repo")
    return Reference(repo=repo, file=path, quant=quant)


def _url_reference(url: str) -> Reference:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if not parts.netloc or not path.lower().endswith(".gguf"):
        raise BadRequest(f"{url!r}: a URL must name a .gguf file")
    hub = re.fullmatch(rf"/({NAME_PART}/{NAME_PART})/(?:resolve|blob)/([^/]+)/(.+\.gguf)", path, re.IGNORECASE)
    if (parts.hostname or "").lower().removeprefix("www.") in HUB_HOSTS and hub:
        return Reference(repo=hub.group(1), revision=hub.group(2), file=hub.group(3))
    return Reference(url=url)


def gguf_files(siblings: list[dict]) -> list[dict]:
    """The repo's model files: every .gguf but vision projectors (mmproj)."""
    return [s for s in siblings if s["rfilename"].lower().endswith(".gguf")
            and "mmproj" not in s["rfilename"].rsplit("/", 1)[-1].lower()]


def choose_file(files: list[dict], ref: Reference) -> dict:
    """The listing entry a reference asks for: its file, its quant, else Q4_K_M, else the smallest."""
    names = ", ".join(f["rfilename"] for f in files) or "none"
    if ref.file is not None:
        found = [f for f in files if f["rfilename"] == ref.file]
        if not found:
            raise NotFound(f"{ref.repo} has no file {ref.file}; its GGUF files: {names}")
        chosen = found[0]
    else:
        single = [f for f in files if not SPLIT_PART.search(f["rfilename"])]
        quant = ref.quant or DEFAULT_QUANT
        matching = _with_quant(single, quant)
        if not matching and ref.quant is None:
            matching = single
        if not matching:
            split = _with_quant(files, quant)
            if split:
                raise BadRequest(f"{ref.repo}: {quant} is split into {len(split)} files "
                                 f"({split[0]['rfilename']}, ...); companion pulls single-file GGUFs")
            raise NotFound(f"{ref.repo} has no {quant} file; its GGUF files: {names}")
        chosen = min(matching, key=lambda f: (_size_of(f) or 0, f["rfilename"]))
    if SPLIT_PART.search(chosen["rfilename"]):
        raise BadRequest(f"{chosen['rfilename']} is one part of a split GGUF; companion pulls single-file GGUFs")
    return chosen


def _with_quant(files: list[dict], quant: str) -> list[dict]:
    """Files whose name holds the quant as a word (Q4_K not in Q4_K_M), else anywhere."""
    word = re.compile(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])", re.IGNORECASE)
    named = [f for f in files if word.search(f["rfilename"].rsplit("/", 1)[-1])]
    return named or [f for f in files if quant.lower() in f["rfilename"].rsplit("/", 1)[-1].lower()]


def _size_of(entry: dict) -> int | None:
    lfs = entry.get("lfs") or {}
    return lfs.get("size") or entry.get("size")


def resolve(ref: Reference, endpoint: str, session: requests.Session | None = None) -> Source:
    """The file a reference names, with its size and sha256 from the hub's listing."""
    if ref.url is not None:
        return Source(url=ref.url, filename=safe_filename(urlsplit(ref.url).path), label=ref.url)
    from huggingface_hub import hf_hub_url
    from huggingface_hub.hf_api import ModelInfo

    assert ref.repo is not None
    session = session or requests.Session()
    endpoint = endpoint.rstrip("/")
    listing = f"{endpoint}/api/models/{ref.repo}/revision/{quote(ref.revision, safe='')}"
    response = _request(session, "GET", listing, params={"blobs": "true"})
    if response.status_code in (401, 404):   # the hub answers 401 for a repo that does not exist
        raise NotFound(f"no model repo {ref.repo} (revision {ref.revision}) on {endpoint}, or it is private")
    _raise_for_status(response, listing)
    try:
        info = ModelInfo(**response.json())
    except (ValueError, TypeError, KeyError) as exc:
        raise BadGateway(f"{listing}: not a model listing ({exc})") from None
    siblings = [{"rfilename": s.rfilename, "size": s.size,
                 "lfs": {"sha256": s.lfs.sha256, "size": s.lfs.size} if s.lfs else None}
                for s in info.siblings or []]
    chosen = choose_file(gguf_files(siblings), ref)
    lfs = chosen.get("lfs") or {}
    revision = info.sha or ref.revision      # the commit listed: a resumed download gets the same bytes
    return Source(url=hf_hub_url(ref.repo, chosen["rfilename"], revision=revision, endpoint=endpoint),
                  filename=safe_filename(chosen["rfilename"]), size=_size_of(chosen),
                  sha256=(lfs.get("sha256") or "").lower() or None,
                  label=f"{ref.repo}/{chosen['rfilename']}")


def safe_filename(path: str) -> str:
    """The local file name: the last part of the remote path, in safe characters."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", unquote(path).rsplit("/", 1)[-1]).lstrip("._-")
    if not SAFE_FILE.fullmatch(name):
        raise BadRequest(f"{path!r} does not name a .gguf file")
    return name


def _request(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    try:
        return session.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.Timeout:
        raise GatewayTimeout(f"{url}: no answer in time") from None
    except requests.RequestException as exc:
        raise BadGateway(f"cannot reach {urlsplit(url).netloc}: {exc}") from None


def _raise_for_status(response: requests.Response, url: str) -> None:
    if response.status_code in (401, 403):
        raise Forbidden(f"{url}: the server refused the download ({response.status_code}); gated or private "
                        "models need a login, which companion does not do")
    if response.status_code == 404:
        raise NotFound(f"{url}: not found")
    if response.status_code >= 400:
        raise BadGateway(f"{url}: the server answered {response.status_code}")


def pull(text: str, models_dir: Path, *, file: str | None = None, endpoint: str = "https://huggingface.co",
         progress: Progress | None = None, session: requests.Session | None = None) -> Path:
    """Resolve a reference and download its file into models_dir; progress gets Ollama's status
    objects. Returns the model file's path."""
    report = progress or (lambda _: None)
    report({"status": "pulling manifest"})
    session = session or requests.Session()
    source = resolve(parse_reference(text, file), endpoint, session)
    steps = download(source, models_dir, session)
    while True:
        try:
            report(next(steps))
        except StopIteration as done:
            return done.value


def download(source: Source, models_dir: Path, session: requests.Session | None = None,
             retries: int = 3) -> Generator[dict, None, Path]:
    """Download a file, yielding Ollama's progress objects ({"status": "pulling <digest12>", "digest",
    "total", "completed"}, then "verifying sha256 digest", "success"); returns the file's path.

    Closing the generator stops the download; what arrived stays in the .partial file for the next try."""
    session = session or requests.Session()
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / source.filename
    partial = final.with_name(final.name + ".partial")
    status = f"pulling {source.sha256[:12]}" if source.sha256 else f"pulling {source.filename}"
    digest_field = {"digest": f"sha256:{source.sha256}"} if source.sha256 else {}
    if final.exists():
        yield from _already_there(final, source, status, digest_field)
        return final
    name = source.label or source.url
    with _locked(partial) as fh, full_disk_refused():   # the disk filling mid-way: 507, the .partial kept
        _check_space(models_dir, source, fh)
        digest, done = _hash_of(fh)
        total, sha256 = source.size, source.sha256
        if total is not None and done > total:   # not the file this is: start over
            fh.truncate(0)
            digest, done = hashlib.sha256(), 0
        tries, last = 0, 0.0
        while total is None or done < total:
            try:
                with _get_from(session, source.url, done) as response:
                    if response.status_code == 416 and done and done == _content_range_total(response):
                        total = done            # everything had arrived already
                        break
                    _raise_for_status(response, source.url)
                    if response.status_code != 206 and done:   # the server ignored the Range: start over
                        fh.truncate(0)
                        digest, done = hashlib.sha256(), 0
                    length = _length_of(response)
                    if total is None:
                        total = length
                    elif length is not None and length != total:
                        raise BadGateway(f"{name}: the server sends {length} bytes, the hub listed {total}")
                    sha256 = sha256 or _linked_sha256(response)
                    for block in response.iter_content(CHUNK):
                        fh.write(block)
                        digest.update(block)
                        done += len(block)
                        if time.monotonic() - last >= PROGRESS_EVERY:
                            last = time.monotonic()
                            yield {"status": status, **digest_field, "total": total or done, "completed": done}
                if total is None:
                    total = done                # no length known: the end of the body is the end
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                tries += 1
                if tries > retries:
                    raise BadGateway(f"{name}: the download broke off {tries} times ({exc}); "
                                     f"pull again to resume at {done} bytes") from None
                time.sleep(min(2 ** tries, 10) / 10)
                continue
            if done < total:                    # the body ended early: ask for the rest
                tries += 1
                if tries > retries:
                    raise BadGateway(f"{name}: the download ended at {done} of {total} bytes; pull again to resume")
        fh.flush()
        yield {"status": status, **digest_field, "total": total, "completed": done}
        yield {"status": "verifying sha256 digest"}
        problem = _problem(fh, Source(source.url, source.filename, source.size, sha256), done, digest.hexdigest())
        if problem:
            fh.close()
            partial.unlink(missing_ok=True)
            raise BadGateway(f"{name}: {problem}; the download was deleted")
        os.fsync(fh.fileno())                   # on disk before it has the final name (a power cut)
        os.replace(partial, final)
    yield {"status": "success"}
    return final


def _already_there(final: Path, source: Source, status: str, digest_field: dict) -> Iterator[dict]:
    size = final.stat().st_size
    if source.size is not None and size != source.size:
        raise Conflict(f"{final} exists and is another file ({size} bytes, not {source.size}); delete it first")
    yield {"status": status, **digest_field, "total": size, "completed": size}
    if source.sha256:
        yield {"status": "verifying sha256 digest"}
        with final.open("rb") as fh:
            digest, _ = _hash_of(fh)
        if digest.hexdigest() != source.sha256:
            raise Conflict(f"{final} exists and is another file (its sha256 differs); delete it first")
    yield {"status": "success"}


class _locked:
    """The .partial file open for appending, locked against a second pull of the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        self.fh = self.path.open("a+b")
        if fcntl is not None:
            try:
                fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.fh.close()
                raise Conflict(f"{self.path.name[:-len('.partial')]} is being pulled already") from None
        return self.fh

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()


def _hash_of(fh: IO[bytes]) -> tuple[hashlib._Hash, int]:
    """The sha256 and length of what the file holds (read from its start; left at its end)."""
    digest = hashlib.sha256()
    fh.seek(0)
    done = 0
    while block := fh.read(CHUNK):
        digest.update(block)
        done += len(block)
    return digest, done


def _check_space(models_dir: Path, source: Source, fh: IO[bytes]) -> None:
    if source.size is None:
        return
    have = os.fstat(fh.fileno()).st_size
    free = shutil.disk_usage(models_dir).free
    if source.size - have > free:
        raise StorageFull(f"not enough disk space for {source.filename}: {(source.size - have) / 1e9:.2f} GB more "
                       f"needed, {free / 1e9:.2f} GB free in {models_dir}")


def _get_from(session: requests.Session, url: str, start: int) -> requests.Response:
    """GET the file from byte start on, streamed (redirects to a CDN followed, the Range kept)."""
    headers = {"Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return session.get(url, headers=headers, stream=True, timeout=TIMEOUT)


def _length_of(response: requests.Response) -> int | None:
    """The whole file's length, from a whole (200) or partial (206) answer."""
    if response.status_code == 206:
        return _content_range_total(response)
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _linked_sha256(response: requests.Response) -> str | None:
    """The sha256 the hub gives an LFS file (X-Linked-Etag, on the answer or the redirect to its CDN)."""
    for answer in [*response.history, response]:
        etag = answer.headers.get("X-Linked-Etag", "").strip('W/"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", etag):
            return etag
    return None


def _content_range_total(response: requests.Response) -> int | None:
    found = re.search(r"/(\d+)\s*$", response.headers.get("Content-Range", ""))
    return int(found.group(1)) if found else None


def _problem(fh: IO[bytes], source: Source, size: int, sha256: str) -> str | None:
    """Why a finished download is not the file it should be (None when it is)."""
    if source.size is not None and size != source.size:
        return f"{size} bytes arrived, the hub listed {source.size}"
    if source.sha256 and sha256 != source.sha256:
        return f"its sha256 {sha256} is not the hub's {source.sha256}"
    fh.seek(0)
    if fh.read(4) != b"GGUF":
        return "it is not a GGUF file"
    return None


def delete_model(models_dir: Path, name: str, active_path: str | None, bundled: Path | None,
                 loading: Sequence[str] = ()) -> Path:
    """Delete a pulled model file from models_dir, named by file name, stem or Ollama tag (stem:latest).
    The bundled model, the one serving and those loading are refused. Returns the deleted path."""
    wanted = name.strip()
    key = wanted.lower().removesuffix(":latest")
    if bundled is not None and key in (bundled.name.lower(), bundled.stem.lower()):
        raise BadRequest(f"{bundled.name} is the bundled model and cannot be deleted")
    files = sorted(models_dir.glob("*.gguf")) + sorted(models_dir.glob("*.gguf.partial"))
    found = [p for p in files if key in (p.name.lower(), p.stem.lower())]
    if not found:
        names = ", ".join(p.name for p in files) or "none"
        raise NotFound(f"no model {wanted!r} in {models_dir}; the models there: {names}")
    path = found[0]
    if active_path and path.resolve() == Path(active_path).resolve():
        raise BadRequest(f"{path.name} is the model serving now; switch to another one first")
    if any(path.resolve() == Path(other).resolve() for other in loading):
        raise BadRequest(f"{path.name} is loading to serve; wait until it does, then switch to another one")
    path.unlink()
    return path
