"""The command line: serve, chat, doctor, reindex, backup, restore, export, import, pull."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from companion import __version__
from companion.api.security import is_loopback
from companion.config import ConfigError, Settings, load_settings
from companion.lockfile import DataDirBusy, DataDirLock, is_locked

log = logging.getLogger("companion")


def settings_from(config: str | None, **flags: object) -> Settings:
    """Settings from the config file, environment and the flags given."""
    overrides: dict = {}
    if flags.get("data_dir"):
        overrides["data_dir"] = flags["data_dir"]
    for section, key in (("server", "host"), ("server", "port"), ("model", "path")):
        flag = "model" if key == "path" else key
        if flags.get(flag) is not None:
            overrides.setdefault(section, {})[key] = flags[flag]
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False, data_dir: str | None = None) -> None:
    """One log format, to stderr and (for the daemon) a rotating file in the data dir."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    if data_dir:
        from logging.handlers import RotatingFileHandler

        folder = Path(data_dir) / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(folder / "companion.log", maxBytes=1_000_000, backupCount=5,
                                      encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)


config_option = click.option("--config", "config", type=click.Path(dir_okay=False),
                             help="TOML config file (see config.example.toml).")
data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                               help="Data dir (default: $COMPANION_HOME or the user data dir).")


@click.group()
@click.version_option(__version__, prog_name="companion")
def cli() -> None:
    """companion: a local AI companion daemon with memory."""


@cli.command()
@config_option
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 3000).")
@data_dir_option
@click.option("--model", type=click.Path(dir_okay=False), help="GGUF model file to load.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def serve(config, host, port, data_dir, model, verbose) -> None:
    """Run the daemon: the AI Companion API on a local model."""
    import waitress

    from companion.allocator import keep_large_blocks_mapped
    from companion.app import create_app

    keep_large_blocks_mapped()     # a KV state freed goes back to the system (allocator.py)
    settings = settings_from(config, host=host, port=port, data_dir=data_dir, model=model)
    setup_logging(verbose, settings.data_dir)
    if not is_loopback(settings.server.host) and not settings.server.api_key:
        raise click.ClickException(
            f"refusing to listen on {settings.server.host} without an API key: anyone on the network "
            "could read and change everything. Set [server] api_key (or COMPANION_SERVER_API_KEY), "
            "or listen on 127.0.0.1.")
    try:
        lock = DataDirLock(settings.data_dir).acquire()
    except DataDirBusy as exc:
        raise click.ClickException(f"{exc}; stop that daemon first or use another --data-dir") from None

    def stop(signum, frame):  # SIGTERM ends the server like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    app = create_app(settings)
    services = app.extensions["companion"]
    host, port = settings.server.host, settings.server.port
    log.info("companion %s: data in %s, model %s", __version__, settings.data_dir,
             services.generator.path or "(none)")
    click.echo(f"companion listening on http://{host}:{port}", err=True)
    try:
        waitress.serve(app, host=host, port=port, threads=settings.server.threads,
                       ident="companion", clear_untrusted_proxy_headers=True, asyncore_use_poll=True,
                       max_request_body_size=int(settings.server.max_body_mb * 1024 * 1024))
    except KeyboardInterrupt:
        pass
    finally:
        if services.turns.abort():   # a reply in progress: stop it and keep what it said
            log.info("stopping the running generation; its partial reply is kept")
        if not services.turns.wait_idle(timeout=30):
            log.warning("a generation did not end in time")
        services.close()
        lock.release()
        log.info("companion stopped")


@cli.command()
@config_option
@data_dir_option
@click.option("--model", type=click.Path(dir_okay=False), help="GGUF model file to check.")
def doctor(config, data_dir, model) -> None:
    """Check the setup: config, data dir, database, model, embedder, memory index."""
    from companion.services import build_services

    setup_logging()
    logging.getLogger().setLevel(logging.WARNING)
    settings = settings_from(config, data_dir=data_dir, model=model)
    failures = 0

    def report(ok: bool, what: str, detail: str = "") -> None:
        nonlocal failures
        failures += not ok
        click.echo(f"{'ok  ' if ok else 'FAIL'}  {what}{': ' + detail if detail else ''}")

    data = Path(settings.data_dir)
    report(True, "config", f"data dir {data}")
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
        report(True, "data dir is writable")
    except OSError as exc:
        report(False, "data dir is writable", str(exc))
        sys.exit(1)
    services = build_services(settings)
    check = services.store.integrity_check()
    report(check == "ok", "database", f"integrity {check}, {services.store.count('messages')} messages, "
                                      f"{services.store.count('memories')} memories")
    services.generator.load()
    report(services.generator.state == "ready", "model",
           services.generator.error or f"{services.generator.path} (n_ctx {services.generator.n_ctx})")
    services.embedder.load()
    if services.embedder.state == "ready":
        dims = len(services.embedder.embed(["hello"])[0])
        report(True, "embedder", f"{services.embedder.path} ({dims} dimensions)")
    else:
        report(False, "embedder", services.embedder.error or "")
    if is_locked(settings.data_dir):
        report(True, "memory index", "skipped: a running daemon holds the data dir")
    elif services.embedder.state == "ready":
        try:
            rows, indexed = services.store.count("memories"), services.memory.indexed_count()
            report(rows == indexed, "memory index",
                   f"{indexed} indexed of {rows} memories" + ("" if rows == indexed else
                                                               " (run `companion reindex`)"))
        except Exception as exc:
            report(False, "memory index", f"{type(exc).__name__}: {exc}")
    services.close()
    sys.exit(1 if failures else 0)


@cli.command()
@config_option
@data_dir_option
def reindex(config, data_dir) -> None:
    """Rebuild the long-term memory index (Chroma) from the database."""
    from companion.services import build_services

    setup_logging()
    settings = settings_from(config, data_dir=data_dir)
    try:
        lock = DataDirLock(settings.data_dir).acquire()
    except DataDirBusy as exc:
        raise click.ClickException(f"{exc}; stop the daemon before reindexing") from None
    try:
        services = build_services(settings)
        services.embedder.load()
        if services.embedder.state != "ready":
            raise click.ClickException(f"embedder failed: {services.embedder.error}")
        total = services.store.count("memories")
        with click.progressbar(length=total, label="embedding memories") as bar:
            done = services.memory.rebuild(progress=bar.update)
        click.echo(f"reindexed {done} memories")
        services.close()
    finally:
        lock.release()


def _counted(counts: dict) -> str:
    """'1 companion, 3 messages, 2 memories and 1 avatar'."""
    words = (("companions", "companion"), ("messages", "message"), ("memories", "memory"), ("avatars", "avatar"))
    parts = [f"{counts[key]} {key if counts[key] != 1 else one}" for key, one in words]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@config_option
@data_dir_option
@click.option("--force", is_flag=True, help="Overwrite FILE when it exists.")
def backup(file, config, data_dir, force) -> None:
    """Write a backup zip of the data dir to FILE (safe while the daemon runs).

    It holds a consistent snapshot of the database, the avatars, the config file (--config or
    $COMPANION_CONFIG) when there is one, and a manifest. The memory index is not in it: a
    restore rebuilds it from the database.
    """
    import os

    from companion.backup import BackupError, create_backup

    settings = settings_from(config, data_dir=data_dir)
    config_path = config or os.environ.get("COMPANION_CONFIG") or None
    try:
        manifest = create_backup(settings, file, config_path=config_path, force=force)
    except (BackupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up {_counted(manifest['counts'])}"
               + (", plus the config file," if manifest["config"] else "")
               + f" from {settings.data_dir} to {file}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@config_option
@data_dir_option
@click.option("--force", is_flag=True, help="Replace the data dir's database and avatars when it has some.")
def restore(file, config, data_dir, force) -> None:
    """Restore a backup zip made by `companion backup` into the data dir (stop the daemon first).

    The memory index is deleted (emptied, in a Chroma server given by [memory] chroma_url) and
    rebuilt from the restored database on the next start.
    A config file in the backup is not put anywhere: extract it with `unzip FILE config.toml`.
    """
    from companion.backup import BackupError, restore_backup

    settings = settings_from(config, data_dir=data_dir)
    try:
        result = restore_backup(settings, file, force=force)
    except (BackupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    counts = result["counts"]
    click.echo(f"restored {_counted(counts)} from {file} "
               f"(made {result['created_at']}) into {result['data_dir']}"
               + (", replacing its data" if result["replaced"] else ""))
    click.echo("the memory index is rebuilt from the database on the next start "
               f"({counts['memories']} {'memory' if counts['memories'] == 1 else 'memories'} to embed)")
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if result["config_in_backup"]:
        click.echo(f"the backup also holds a config file: `unzip -p {file} config.toml > config.toml` to get it")


@cli.command("export")
@click.argument("chat_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["json", "jsonl", "txt", "csv"]), default="jsonl",
              show_default=True, help="jsonl is SillyTavern's chat file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default: standard output).")
@config_option
@data_dir_option
def export_chat(chat_id, fmt, output, config, data_dir) -> None:
    """Export a chat (reads the database only: safe while the daemon runs)."""
    from companion.chat.chats import ChatsService
    from companion.errors import CompanionError
    from companion.store import Store
    settings = settings_from(config, data_dir=data_dir)
    try:
        store = Store(Path(settings.data_dir) / "companion.db", read_only=True)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{exc}: is --data-dir (or $COMPANION_HOME) right?") from None
    try:
        text = ChatsService(store, memory=None).export(chat_id, fmt)
    except CompanionError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote chat {chat_id} as {fmt} to {output}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--companion-id", type=int, help="The companion to give the chat to (default: the active one).")
@config_option
@data_dir_option
def import_chat(file, companion_id, config, data_dir) -> None:
    """Import a SillyTavern .jsonl chat (or companion's JSON export) as a new chat, memories included."""
    from companion.errors import CompanionError
    from companion.services import build_services

    setup_logging()
    settings = settings_from(config, data_dir=data_dir)
    try:
        lock = DataDirLock(settings.data_dir).acquire()
    except DataDirBusy as exc:
        raise click.ClickException(f"{exc}; import through the running daemon (POST /api/chats/import) "
                                   "or stop it first") from None
    try:
        services = build_services(settings)
        services.embedder.load()
        try:
            chat = services.chats.import_file(Path(file).read_bytes(),
                                              companion_id or services.companions.active_companion_id())
            count = services.store.count_messages(chat["id"])
        except CompanionError as exc:
            raise click.ClickException(exc.message) from None
        finally:
            services.close()
        click.echo(f"imported {count} messages as chat {chat['id']} of companion {chat['companion_id']}")
    finally:
        lock.release()


@cli.command()
@click.option("--url", envvar="COMPANION_URL", default="http://127.0.0.1:3000", show_default=True,
              help="The daemon to talk to (or $COMPANION_URL).")
@click.option("--api-key", envvar="COMPANION_API_KEY", help="The daemon's [server] api_key (or $COMPANION_API_KEY).")
@click.option("--history-file", type=click.Path(dir_okay=False),
              help="Where to keep the line history (default: chat_history in the user state dir).")
def chat(url, api_key, history_file) -> None:
    """Chat with a running daemon in the terminal (/help inside lists the commands)."""
    from companion.terminal import run_chat

    sys.exit(run_chat(url, api_key, history_file))


@cli.command()
@click.argument("reference")
@click.argument("file", required=False)
@config_option
@data_dir_option
@click.option("--endpoint", help="The Hugging Face hub to ask (default: [model] hf_endpoint, $HF_ENDPOINT).")
def pull(reference, file, config, data_dir, endpoint) -> None:
    """Download a GGUF model into <data dir>/models (safe while the daemon runs).

    REFERENCE is hf.co/OWNER/REPO[:QUANT] (QUANT such as Q4_K_M picks the file; without it Q4_K_M,
    else the smallest), OWNER/REPO FILE.gguf, OWNER/REPO/FILE.gguf, or an https:// URL of a .gguf.
    The file is checked against the hub's size and sha256; an interrupted pull resumes.
    """
    from companion.errors import CompanionError
    from companion.model.pull import pull as pull_model

    settings = settings_from(config, data_dir=data_dir)
    bar = None

    def progress(step: dict) -> None:
        nonlocal bar
        if "total" in step:
            if bar is None:
                bar = click.progressbar(length=step["total"], label=step["status"], show_percent=True,
                                        item_show_func=lambda shown: shown, file=sys.stderr)
                bar.__enter__()
            bar.update(step["completed"] - bar.pos, f"{step['completed'] / 1e9:.2f} of {step['total'] / 1e9:.2f} GB")
            return
        if bar is not None:
            bar.__exit__(None, None, None)
            bar = None
        click.echo(step["status"], err=True)

    try:
        path = pull_model(reference, Path(settings.data_dir) / "models", file=file,
                          endpoint=endpoint or settings.model.hf_endpoint, progress=progress)
    except CompanionError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"pulled {path} ({path.stat().st_size / 1e9:.2f} GB); use it with `companion serve --model {path}`, "
               "PUT /api/config {\"model\": {\"path\": ...}} or the page's Settings")


@cli.command("config-example")
def config_example() -> None:
    """Print every setting with its default and help, as config.example.toml."""
    from companion.config import example_toml

    click.echo(example_toml(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    cli()
